"""Keep every process outside the real experiment's tree in the cgroup `helpers` (cpu.idle=1,
at most 0.5 CPU) and on SCHED_IDLE, so other work on the host cannot delay the real stack
much. Experiment root: /work/s2r-root.pid; exempt roots (the lead's test runs): /work/exempt.pids."""
import os, time
CG = "/sys/fs/cgroup/cpu/helpers/cgroup.procs"
def ppid(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except Exception:
        return 0
def roots(path):
    try:
        return {int(x) for x in open(path).read().split()}
    except Exception:
        return set()
me = os.getpid()
while True:
    keep = roots("/work/s2r-root.pid") | roots("/work/exempt.pids")
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    parent = {p: ppid(p) for p in pids}
    ingroup = roots(CG)
    for p in pids:
        if p in (1, me):
            continue
        try:
            if b"KEEP_NORMAL" in open(f"/proc/{p}/cmdline", "rb").read():
                continue
            if not open(f"/proc/{p}/cmdline", "rb").read():
                continue  # kernel threads
        except Exception:
            continue
        q, kept = p, False
        for _ in range(64):
            if q in keep:
                kept = True; break
            if q <= 1: break
            q = parent.get(q, 0)
        if kept:
            if p in ingroup or os.sched_getscheduler(p) != os.SCHED_OTHER:
                try:
                    with open("/sys/fs/cgroup/cpu/cgroup.procs", "w") as f:
                        f.write(str(p))
                    for t in os.listdir(f"/proc/{p}/task"):
                        os.sched_setscheduler(int(t), os.SCHED_OTHER, os.sched_param(0))
                except Exception:
                    pass
            continue
        if p in ingroup:
            continue
        try:
            with open(CG, "w") as f:
                f.write(str(p))
        except Exception:
            pass
    time.sleep(0.5)
