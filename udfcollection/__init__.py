"""kapudf: a fast, safe agent and a catalogue of ready-made UDFs for InfluxData Kapacitor.

Importing this package is cheap on purpose: Kapacitor starts `kapudf run NAME` once per UDF at
daemon start-up only to ask for Info, so nothing heavy (numpy, scikit-learn, models) may load
here.
"""

__version__ = "0.1.0"
