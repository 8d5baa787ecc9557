"""The evaluation harness: policies x patterns x seeds on a backend, statistics, report, figures."""
