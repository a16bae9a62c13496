"""A webhook receiver for benchmarks: answers every POST 204 on kept-alive connections and counts the
records it got (printed on SIGTERM). ``python -m coffer.bench.webhook_sink PORT``."""

from __future__ import annotations

import asyncio
import signal
import sys

received = 0
posts = 0


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global received, posts
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            received += body.count(b'"eventVersion"')
            posts += 1
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    print(f"webhook sink: {received} records in {posts} POSTs", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
