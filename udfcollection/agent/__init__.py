"""The runtime: connection handling (reader thread, writer, keepalives), the handler that runs a
declared UDF, and the Unix-socket server."""
