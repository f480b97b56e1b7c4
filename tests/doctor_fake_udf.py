"""A deliberately misbehaving UDF process for `kapudf doctor` tests.

    python doctor_fake_udf.py [--sleep S] [--keepalives] [--junk] [--hang] [--exit-code N]

--sleep S      wait S seconds before answering Info (a UDF loading a model first)
--keepalives   meanwhile answer keepalive requests (as kapudf's reader thread does)
--junk         print text on stdout before answering (a stray print)
--hang         ignore the end of stdin and keep running after answering
--exit-code N  exit with status N when stdin ends
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--keepalives", action="store_true")
    ap.add_argument("--junk", action="store_true")
    ap.add_argument("--hang", action="store_true")
    ap.add_argument("--exit-code", type=int, default=0)
    args = ap.parse_args()
    out = sys.stdout.buffer
    lock = threading.Lock()
    info_due = time.monotonic() + args.sleep
    eof = threading.Event()

    def send(resp: udf_pb2.Response) -> None:
        with lock:
            out.write(encode_frame(resp.SerializeToString()))
            out.flush()

    def reader() -> None:
        splitter = FrameSplitter()
        while True:
            data = os.read(0, 65536)
            if not data:
                eof.set()
                return
            frames, _ = splitter.feed(data)
            for f in frames:
                req = udf_pb2.Request.FromString(f)
                if req.WhichOneof("message") == "keepalive" and args.keepalives:
                    resp = udf_pb2.Response()
                    resp.keepalive.time = req.keepalive.time
                    send(resp)

    threading.Thread(target=reader, daemon=True).start()
    if args.junk:
        out.write(b"loading model...\n")
        out.flush()
    time.sleep(max(0.0, info_due - time.monotonic()))
    resp = udf_pb2.Response()
    resp.info.wants = udf_pb2.STREAM
    resp.info.provides = udf_pb2.BATCH
    resp.info.options["field"].valueTypes.append(udf_pb2.STRING)
    send(resp)
    eof.wait()
    if args.hang:
        time.sleep(3600)
    sys.exit(args.exit_code)


if __name__ == "__main__":
    main()
