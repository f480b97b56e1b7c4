# Stand-in for a vendored copy of Kapacitor's generated udf_pb2.py: must never be imported.
raise ImportError("the vendored udf_pb2 was imported; kapudf should have replaced it")
