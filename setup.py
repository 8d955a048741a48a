"""Compiled kernels; every other setting is in pyproject.toml.

FLOWKIT_SANITIZE=1 builds them with AddressSanitizer and UndefinedBehaviorSanitizer (any
undefined behaviour aborts); run Python with the sanitizer runtime preloaded, see
docs/fuzzing.md (fuzz/sanitized_tests.sh does both).
"""
import os

from setuptools import Extension, setup

ARGS = ["-O3", "-std=c11", "-Wall", "-Wno-unused-function"]
LINK_ARGS = []
if os.environ.get("FLOWKIT_SANITIZE"):
    SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
    ARGS = ["-O1", "-g", "-std=c11", "-Wall", "-Wno-unused-function", *SANITIZE]
    LINK_ARGS = SANITIZE


HEADERS = ["flowkit/_buffers.h", "flowkit/flows/_layout.h", "flowkit/flows/_columns.h", "flowkit/flows/_rules.h",
           "flowkit/flows/_conn.h", "flowkit/protocols/_identify.h", "flowkit/protocols/_expect.h"]


def kernel(name: str, source: str) -> Extension:
    # depends: an edited header rebuilds the kernels that may include it
    return Extension(name, [source], include_dirs=["flowkit"], depends=HEADERS, extra_compile_args=ARGS,
                     extra_link_args=LINK_ARGS)


setup(
    ext_modules=[
        kernel("flowkit.capture._framing", "flowkit/capture/_framing.c"),
        kernel("flowkit.decode._decode", "flowkit/decode/_decode.c"),
        kernel("flowkit.decode._text", "flowkit/decode/_text.c"),
        kernel("flowkit.flows._machine", "flowkit/flows/_machine.c"),
        kernel("flowkit.flows._sha1", "flowkit/flows/_sha1.c"),
        kernel("flowkit.flows._rows", "flowkit/flows/_rows.c"),
        kernel("flowkit.flows._stream", "flowkit/flows/_stream.c"),
        kernel("flowkit.protocols._identify", "flowkit/protocols/_identify.c"),
    ],
)
