#!/usr/bin/env python3
"""A third-party WG2 client, as WG2's Python voicebot is written: it picks up any call to the
subscription it acts for (PROTOCOL.md sections 1 and 4.11).

It knows nothing of this core: its stubs are compiled at start from the upstream schema
(tests/wg2_client/proto, without the core's extensions) with grpcio-tools; it connects with an
OAuth client-credentials token and names the subscriber in `wg2-msisdn` without the leading `+`;
while it has nothing to say it sends an empty message every 100 ms.

Usage: voicebot.py ADDR MSISDN_WITHOUT_PLUS ANSWER_SDP_FILE   (token in $WG2_TOKEN)

Prints one line per event on stdout, flushed: `READY` once the stream is open, `OFFER <call_id>
<from>` for the incoming call it answers, `BYE <call_id>` when the call ends; then exits 0. Any
`Error` from the core, a message it does not expect, or a stream that fails prints `FAIL ...` and
exits 1.
"""

import os
import queue
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))


def compile_stubs():
    """Compiles the upstream schema into a temporary package and imports it."""
    out = tempfile.mkdtemp(prefix="wg2-stubs-")
    proto_dir = os.path.join(HERE, "proto")
    files = [
        "wgtwo/common/v0/phonenumber.proto",
        "wgtwo/webterminal/v0/webterminal.proto",
    ]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + files
    )
    if code != 0:
        fail(f"protoc exited {code}")
    sys.path.insert(0, out)
    from wgtwo.webterminal.v0 import webterminal_pb2, webterminal_pb2_grpc  # noqa: E402

    return webterminal_pb2, webterminal_pb2_grpc


def say(line):
    print(line, flush=True)


def fail(why):
    say(f"FAIL {why}")
    sys.exit(1)


def main():
    addr, msisdn, answer_file = sys.argv[1:4]
    token = os.environ["WG2_TOKEN"]
    with open(answer_file, newline="") as f:
        answer_sdp = f.read()
    pb, pb_grpc = compile_stubs()

    outbox = queue.Queue()
    done = threading.Event()

    def requests():
        # Like the voicebot: the queued message if there is one, else an empty keepalive every 100 ms.
        while not done.is_set():
            try:
                yield outbox.get(timeout=0.1)
            except queue.Empty:
                yield pb.WebTerminalMessage()

    channel = grpc.insecure_channel(addr)
    stub = pb_grpc.WebTerminalServiceStub(channel)
    metadata = [("authorization", f"Bearer {token}"), ("wg2-msisdn", msisdn)]
    responses = stub.MultiPipe(requests(), metadata=metadata)
    grpc.channel_ready_future(channel).result(timeout=10)
    say("READY")
    call_id = None
    try:
        for message in responses:
            kind = message.WhichOneof("message")
            if kind == "offer" and call_id is None:
                call_id = message.call_id
                say(f"OFFER {call_id} {message.offer.msisdn.e164}")
                outbox.put(pb.WebTerminalMessage(call_id=call_id, ringing=pb.Ringing()))
                outbox.put(pb.WebTerminalMessage(call_id=call_id, answer=pb.Answer(sdp=answer_sdp)))
            elif kind == "bye" and message.call_id == call_id:
                say(f"BYE {call_id}")
                break
            elif kind == "error":
                fail(f"Error {message.error.err} on {message.call_id!r}")
            else:
                fail(f"unexpected {kind} on {message.call_id!r}")
    except grpc.RpcError as e:
        fail(f"the stream failed: {e.code()} {e.details()}")
    finally:
        done.set()
    channel.close()


if __name__ == "__main__":
    main()
