"""Regenerate the gRPC stubs from fedvst.proto: ``python -m fedvst.protocol.generate``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).parent


def main() -> int:
    code = protoc.main(["grpc_tools.protoc", f"-I{HERE}", f"--python_out={HERE}", f"--pyi_out={HERE}",
                        f"--grpc_python_out={HERE}", str(HERE / "fedvst.proto")])
    if code != 0:
        return code
    grpc_file = HERE / "fedvst_pb2_grpc.py"  # make the generated import package-relative
    grpc_file.write_text(re.sub(r"^import fedvst_pb2 as", "from fedvst.protocol import fedvst_pb2 as",
                                grpc_file.read_text(), flags=re.MULTILINE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
