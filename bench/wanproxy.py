#!/usr/bin/env python3
"""A TCP proxy that makes loopback look like a WAN link, for bench/wan.sh.

This machine's kernel has no sch_netem (`tc qdisc add ... netem` says "Specified qdisc kind is
unknown"), so latency and bandwidth are simulated in user space: every byte that crosses the
proxy, in either direction, is delivered DELAY_MS after it arrived (RTT = 2 x DELAY_MS), and each
direction is limited to RATE_MBIT megabits per second (a byte leaves no earlier than the link
could have serialised it). Order is kept. What this does not model: packet loss, TCP's own slow
start on the slow link (the proxy's sockets are on loopback), jitter.

    wanproxy.py LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS RATE_MBIT
"""

import asyncio
import sys
import time


async def pipe(reader, writer, delay, rate_bytes):
    queue = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic(), data))
            if not data:
                return

    async def write():
        link_free = 0.0  # when the simulated link has sent everything queued so far
        while True:
            arrived, data = await queue.get()
            if not data:
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            start = max(arrived, link_free)
            link_free = start + len(data) / rate_bytes
            wait = link_free + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    await asyncio.gather(read(), write())


async def main():
    listen, host, port, delay_ms, rate_mbit = sys.argv[1:6]
    delay = float(delay_ms) / 1000.0
    rate_bytes = float(rate_mbit) * 1_000_000 / 8

    async def handle(c_reader, c_writer):
        try:
            s_reader, s_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            c_writer.close()
            return
        try:
            await asyncio.gather(
                pipe(c_reader, s_writer, delay, rate_bytes),
                pipe(s_reader, c_writer, delay, rate_bytes),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (c_writer, s_writer):
                try:
                    w.close()
                except OSError:
                    pass

    server = await asyncio.start_server(handle, "127.0.0.1", int(listen))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
