import subprocess
import sys

import flowkit


def test_version_matches_cli():
    out = subprocess.run(
        [sys.executable, "-c", "import flowkit.cli as c; raise SystemExit(c.main(['--version']))"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == f"flowkit {flowkit.__version__}"


def test_flows_is_callable_package():
    import flowkit.flows.schema  # importing a submodule must not shadow the function

    assert callable(flowkit.flows)
    assert "src_ip" in flowkit.flows.schema.FLOW_COLUMNS
