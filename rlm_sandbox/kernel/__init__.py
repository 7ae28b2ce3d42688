"""The in-sandbox kernel: standard library only, relative imports only.

It is copied into the sandbox image as the top-level package ``rlm_kernel`` and run with
``python3 -m rlm_kernel``; LocalSandbox runs the same files as a subprocess.
"""
