"""Certificates for the examples' TLS tests, made at test time by the
library's own fixture (tests/tls/gen-certs.sh OUTDIR), and small helpers
shared by fetch_tls_test.py, chat_tls_test.py and httpd_test.py."""
import os
import ssl
import subprocess
import tempfile


class Certs:
    """The fixture's files: a test CA, a server certificate for localhost and
    127.0.0.1 signed by it, and the bad ones (expired, wrong name, signed by
    a CA nobody trusts)."""

    def __init__(self, gen_script):
        self.dir = tempfile.mkdtemp(prefix="aloop-certs-")
        subprocess.run(["sh", gen_script, self.dir], check=True, capture_output=True, timeout=120)
        self.ca = self.path("ca.pem")
        self.server = (self.path("server.pem"), self.path("server.key"))
        self.expired = (self.path("expired.pem"), self.path("expired.key"))
        self.wrong_name = (self.path("wrongname.pem"), self.path("wrongname.key"))
        self.other_ca = self.path("other-ca.pem")
        self.untrusted = (self.path("untrusted.pem"), self.path("untrusted.key"))

    def path(self, name):
        p = os.path.join(self.dir, name)
        assert os.path.exists(p), "the certificate fixture made no %s" % name
        return p

    def cleanup(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def server_context(pair, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pair)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx
