"""Calibration and fidelity: fit the twin from trace bundles, and measure how close it is.

- `calibration.bundle.load_bundle` — read and cross-check a bundle (docs/bundle-format.md)
- `calibration.calibrate.calibrate` — fit every device into a `kisim.core.config.Calibration`
- `calibration.validate.validate` — replay bundles in the twin, per-window errors (MAPE)
- `calibration.report` — the calibration YAML, report and figures `kisim calibrate` writes;
- `calibration.validation_report` — the validation JSON, report and figures `kisim validate` writes
- `calibration.synth.write_synthetic_bundle` — a bundle written by the twin (tests)

The commands are `kisim calibrate` and `kisim validate` (`kisim.cli.calibrate`); the
methods are in docs/calibration.md.
"""
