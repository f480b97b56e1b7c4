"""Run scripts written for Kapacitor's stock Python agent, unchanged, on kapudf's runtime.

`kapudf run path/to/script.py [args]` (see `runner.run_script`) executes the script as
`__main__` while `kapacitor.udf.agent` and `kapacitor.udf.udf_pb2` resolve to kapudf's own
implementation (`compat.agent` and the generated `udfcollection.protocol.udf_pb2`), so the
script's `Agent`, `Handler` and `Server` get kapudf's reader thread, keepalives, buffered output
and error policy. Modules:

- `imports`: the import hook that provides those module names only while the script runs;
- `legacy_fields`: the older repeated-entry field style (`for kv in point.fieldsDouble`,
  `.add(key=, value=)`) and `str` snapshots on top of proto3 maps, for the run only;
- `agent`: `Agent`, `Handler`, `Server` as scripts use them;
- `script_handler`: adapts a script's Handler to kapudf's protocol loop (error policy);
- `runner`: `run_script`.
"""
