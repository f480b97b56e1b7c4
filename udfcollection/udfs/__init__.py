"""The catalogue: one UDF per module. Modules are imported only when their UDF is used."""
