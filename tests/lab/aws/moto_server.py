"""The moto server of the lab: a real moto on a free loopback port, in a thread of the lab's process."""

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


class MotoServer:
    """moto in a thread of this process, so that the lab's models share its memory (the backends they patch)."""

    def __init__(self, port):
        self.port = port
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self._server.start()

    def stop(self):
        self._server.stop()
