"""`kisim calibrate` (fit a calibration from trace bundles) and `kisim validate` (replay
bundles in the twin and report its error). See docs/calibration.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kisim.core.errors import ConfigError
from kisim.core.paths import config_path

DEFAULT_PRIOR = config_path("calibration", "rtx3080-desktop-cpu.yaml")


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not k or not v:
            raise ConfigError(f"{flag} {it!r}: expected KEY=VALUE")
        out[k.strip()] = v.strip()
    return out


def _bundle_dirs(paths: list[Path]) -> list[Path]:
    """Each path as a bundle, or a folder of bundles (its sub-folders with a manifest.yaml)."""
    out = []
    for p in paths:
        if p.is_dir() and not (p / "manifest.yaml").exists():
            subs = sorted(d for d in p.iterdir() if (d / "manifest.yaml").exists())
            if not subs:
                raise ConfigError(f"{p}: neither a bundle nor a folder of bundles")
            out += subs
        else:
            out.append(p)
    return out


def _warn(lines: list[str]) -> None:
    for w in lines:
        print(f"warning: {w}", file=sys.stderr)


def calibrate(
    bundles: Annotated[
        list[Path], typer.Argument(help="Trace bundle folders (docs/bundle-format.md).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Calibration YAML to write, e.g. configs/calibrated/NAME.yaml; "
            "NAME.report.md and NAME.figures/ go next to it."
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Calibration name (default: the file's stem).")
    ] = None,
    prior: Annotated[
        Path | None,
        typer.Option(
            help="Calibration whose values stand in for what the bundles cannot identify."
        ),
    ] = DEFAULT_PRIOR,
    device: Annotated[
        list[str] | None,
        typer.Option(
            help="Name the device entry of a kind: KIND=KEY (e.g. cpu=desktop-cpu); repeatable."
        ),
    ] = None,
    bootstrap: Annotated[int, typer.Option(min=20, help="Bootstrap resamples per interval.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimates as JSON.")] = False,
) -> None:
    """Fit a calibration (service curve, noise, overhead, concurrency, start-up) from bundles,
    or from perf_analyzer runs (a folder with perf_run.yaml, or that YAML)."""
    from calibration.bundle import load_bundle
    from calibration.calibrate import calibrate as fit
    from calibration.perf_analyzer import calibrate_command, perf_sources
    from calibration.report import clean, fit_table, write_calibration
    from kisim.core.config import load_calibration
    from kisim.core.outputs import check_out_file

    check_out_file(out)  # before the fit, not after it
    names = _pairs(device, "--device")
    if perf_sources(bundles):
        stem = out.name.removesuffix(".yaml").removesuffix(".yml")
        print(calibrate_command(bundles, out, name or stem, prior,
                                next(iter(names.values()), None), as_json))  # fmt: skip
        return
    pri = load_calibration(prior) if prior is not None else None
    loaded = [load_bundle(b) for b in bundles]
    stem = out.name.removesuffix(".yaml").removesuffix(".yml")
    res = fit(loaded, name or stem, pri, str(prior) if prior else None, names, bootstrap, seed)
    written = write_calibration(res, out)
    _warn(res.warnings)
    if as_json:
        print(
            json.dumps(
                clean(
                    {
                        "calibration": str(out),
                        "devices": {
                            k: d.device.model_dump(mode="json") for k, d in res.devices.items()
                        },
                        "estimates": [
                            dict(zip(("device", "parameter", "estimate", "method"), r, strict=True))
                            for r in fit_table(res)
                        ],
                        "notes": {k: d.notes for k, d in res.devices.items()},
                        "warnings": res.warnings,
                    }
                ),
                indent=1,
            )
        )
        return
    for dev, par, est, _ in fit_table(res):
        print(f"{dev:<10} {par:<28} {est}")
    for k, d in res.devices.items():
        for n in d.notes:
            print(f"note: {k}: {n}")
    print(
        "wrote "
        + ", ".join(str(p) for p in written if p.suffix != ".png")
        + f" and {sum(p.suffix == '.png' for p in written)} figure(s)"
    )


def validate(
    bundles: Annotated[list[Path], typer.Argument(help="Trace bundle folders to replay.")],
    config: Annotated[Path, typer.Option(help="Calibration YAML under test.")],
    seeds: Annotated[int, typer.Option(min=1, help="Twin runs (seeds 0..N-1) per bundle.")] = 10,
    window_s: Annotated[float, typer.Option(min=1.0, help="Comparison window, s.")] = 15.0,
    min_requests: Annotated[
        int,
        typer.Option(min=1, help="Fewest completions for a window's latency percentiles to count."),
    ] = 20,
    device: Annotated[
        list[str] | None,
        typer.Option(help="Map a bundle pool to a calibration device: POOL=KEY; repeatable."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write validation.json/.md, per-window CSVs and figures here."),
    ] = None,
    repeat: Annotated[
        list[Path] | None,
        typer.Option(
            help="Another recording of a validated bundle's experiment (a bundle, or a folder "
            "of bundles): adds the recording floor (recording vs recording) and the twin vs "
            "the mean of the recordings. Repeatable. Validated bundles of one experiment "
            "pair up without it."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Replay bundles in the twin and report its error (MAPE per metric, per utilisation band)."""
    from calibration.bundle import load_bundle
    from calibration.perf_analyzer import perf_sources, validate_command
    from calibration.report import clean
    from calibration.reproducibility import reproducibility, unmatched
    from calibration.validate import validate as run
    from calibration.validation_report import validation_md, write_validation
    from kisim.core.config import load_calibration
    from kisim.core.outputs import check_out_dir

    if out is not None:
        check_out_dir(out)
    if perf_sources(bundles):
        dev = next(iter(_pairs(device, "--device").values()), None)
        print(validate_command(bundles, config, seeds, out, as_json, dev))
        return
    cal = load_calibration(config)
    loaded = [load_bundle(b) for b in bundles]
    _warn([w for b in loaded for w in b.warnings])
    repeats = [load_bundle(b) for b in _bundle_dirs(repeat or [])]
    _warn([w for b in repeats for w in b.warnings])
    _warn(
        [
            f"{r}: no validated bundle is this experiment (--repeat ignored)"
            for r in unmatched(loaded, repeats)
        ]
    )
    res = run(cal, loaded, seeds, window_s, min_requests, _pairs(device, "--device"), str(config))
    res.reproducibility, res.experiments = reproducibility(
        res.bundles, loaded, repeats, window_s, min_requests
    )
    if res.held_in:
        _warn([f"{', '.join(res.held_in)}: the calibration was fitted on it (not held out)"])
    if res.repeats_of_fit:
        _warn(
            [
                f"{', '.join(res.repeats_of_fit)}: a new recording of an experiment the "
                "calibration was fitted on (a held-out recording, not a held-out experiment)"
            ]
        )
    summary = res.summary()
    if out is not None:
        write_validation(res, out)
    if as_json:
        print(json.dumps(clean(summary), sort_keys=True))
        return
    print(validation_md(res, summary).split("## Per bundle")[0].strip())
    if out is not None:
        print(f"wrote {out}/validation.json, validation.md, per-window CSVs and figures")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
    app.command("validate")(validate)
