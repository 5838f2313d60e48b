"""The single-user server as gpulab's spawner starts it: ``python -I -m gpulab_hooks.singleuser``.

It is ``jupyterhub.singleuser``, started faster. jsonschema (which Jupyter's event logging
imports) loads ``rfc3987_syntax`` whenever it is installed, only to check the ``iri`` string
formats, and that module compiles a Lark grammar as it is imported: on gpulab's image that is
1.0 of the server's 2.1 s of imports and 16 MiB of its resident memory, in every server. No
schema of Jupyter Server or jupyter-events uses the ``iri`` formats (they use ``uri`` and
``date-time``), so the server runs without that module: jsonschema then skips that one format
check, as it does wherever the module is not installed. Kernels, terminals and the user's own
Python are separate processes and import it as usual.
"""

import runpy
import sys


def main():
    sys.modules["rfc3987_syntax"] = None  # `import rfc3987_syntax` raises ImportError here
    runpy.run_module("jupyterhub.singleuser", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
