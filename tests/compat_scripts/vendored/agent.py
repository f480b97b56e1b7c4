# Stand-in for a vendored copy of Kapacitor's stock agent module, as the oldest examples keep
# next to the script (`from agent import Agent, Handler`). It carries the stock module's tell-tale
# names so kapudf recognises it, and fails loudly if it is ever imported instead of kapudf's.
class Agent:
    pass


def decodeUvarint32(reader):
    pass


raise ImportError("the vendored stock agent was imported; kapudf should have replaced it")
