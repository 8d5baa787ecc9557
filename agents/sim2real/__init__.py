"""Sim-to-real: the same policies, workloads and seeds on real serving and in the twin,
side by side (`kisim sim2real`, docs/sim2real.md)."""
