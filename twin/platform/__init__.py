"""The shared ML platform in the twin: one small module per cluster mechanism, each naming
the upstream behaviour it copies, and `world` which runs them together on the twin's clock."""
