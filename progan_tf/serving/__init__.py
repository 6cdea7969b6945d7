"""The TF Serving REST API for exported generators.

`codec` is the contract itself, pure (JSON documents and numpy arrays in and out, no
sockets, no threads); `server` puts it behind `http.server` for `progan-serve`.
Production serving is tensorflow/serving itself.
"""
