"""A throwaway certificate authority for tests (openssl): a CA and server certificates it signs."""

import os
import subprocess
import tempfile


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, directory=None):
        self.dir = directory or tempfile.mkdtemp(prefix="gpulab-ca-")
        self.cert = os.path.join(self.dir, "ca.crt")
        self.key = os.path.join(self.dir, "ca.key")
        self._openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            self.key,
            "-out",
            self.cert,
            "-days",
            "3",
            "-subj",
            "/CN=gpulab test CA",
        )

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def issue(self, name, *, ips=(), dns=()):
        """(cert, key) paths of a server certificate for these IP addresses and DNS names."""
        key, csr, cert = (os.path.join(self.dir, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
        self._openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            f"/CN={name}",
        )
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(
                "subjectAltName="
                + ",".join([f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns])
                + "\n"
            )
        self._openssl(
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            self.cert,
            "-CAkey",
            self.key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "3",
            "-extfile",
            ext,
        )
        return cert, key
