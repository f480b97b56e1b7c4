"""The import hook: the stock agent's module names resolve to kapudf's only inside
`stock_agent_modules()`, a real `kapacitor` package stays visible, and nothing is left in
`sys.modules` afterwards. In-process, each test restores sys.path."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from udfcollection.compat import agent as compat_agent
from udfcollection.compat.imports import looks_like_stock_agent, stock_agent_modules
from udfcollection.protocol import udf_pb2

SCRIPTS = Path(__file__).resolve().parent / "compat_scripts"


@pytest.fixture
def clean_path():
    saved = list(sys.path)
    before = set(sys.modules)
    yield
    sys.path[:] = saved
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("kapacitor", "agent", "udf_pb2"):
            del sys.modules[name]


def test_aliases_are_kapudfs_classes_and_vanish_afterwards(clean_path) -> None:
    if importlib.util.find_spec("kapacitor") is not None:
        pytest.skip("a kapacitor package is installed here (the next test covers that case)")
    with stock_agent_modules():
        from kapacitor.udf import udf_pb2 as pb
        from kapacitor.udf.agent import Agent, Handler, Server

        assert Agent is compat_agent.Agent and Handler is compat_agent.Handler
        assert Server is compat_agent.Server
        assert pb.Response is udf_pb2.Response and pb.STREAM == 0 and pb.BATCH == 1
        assert pb.STRING == 3 and pb.DURATION == 4
        import kapacitor.udf.udf_pb2 as again

        assert again is pb
    assert "kapacitor" not in sys.modules and "kapacitor.udf.agent" not in sys.modules
    # kapudf's own modules were not renamed by the aliasing.
    assert udf_pb2.__name__ == "udfcollection.protocol.udf_pb2"
    assert compat_agent.__spec__.name == "udfcollection.compat.agent"
    with pytest.raises(ImportError):
        importlib.import_module("kapacitor.udf.agent")


def test_a_real_kapacitor_package_keeps_working(clean_path) -> None:
    sys.path.insert(0, str(SCRIPTS / "fake_site"))
    with stock_agent_modules():
        import kapacitor
        import kapacitor.client
        from kapacitor.udf.agent import Agent

        assert kapacitor.NAME == "someone else's kapacitor package"
        assert kapacitor.client.MARK == "real kapacitor.client"
        assert Agent is compat_agent.Agent
    # The real package stays imported, without the stand-in subpackage.
    assert sys.modules["kapacitor"] is kapacitor
    assert not hasattr(kapacitor, "udf") and "kapacitor.udf" not in sys.modules


def test_bare_names_replace_a_vendored_stock_agent_only(clean_path, tmp_path) -> None:
    sys.path.insert(0, str(SCRIPTS / "vendored"))
    with stock_agent_modules():
        import agent
        import udf_pb2 as bare_pb2

        assert agent.Agent is compat_agent.Agent
        assert bare_pb2.Point is udf_pb2.Point
    assert "agent" not in sys.modules and "udf_pb2" not in sys.modules
    # Someone else's module called `agent` is left alone.
    (tmp_path / "agent.py").write_text("WHO = 'mine'\n")
    sys.path.insert(0, str(tmp_path))
    with stock_agent_modules():
        import agent as theirs

        assert theirs.WHO == "mine"


def test_stock_agent_recognition(tmp_path) -> None:
    stock_like = tmp_path / "a.py"
    stock_like.write_text("class Agent(object):\n    pass\ndef decodeUvarint32(r):\n    pass\n")
    other = tmp_path / "b.py"
    other.write_text("class Agent:\n    pass\n")
    assert looks_like_stock_agent(str(stock_like))
    assert not looks_like_stock_agent(str(other))
    assert not looks_like_stock_agent(None)
