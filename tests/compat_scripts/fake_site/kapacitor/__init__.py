# A stand-in for some other installed package named `kapacitor` (an API client, say): a script
# may use it next to kapudf's kapacitor.udf.* modules, and kapudf must not hide it.
NAME = "someone else's kapacitor package"
