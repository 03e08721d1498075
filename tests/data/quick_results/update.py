"""Store every experiment's quick results for tests/test_report.py.

    python tests/data/quick_results/update.py [DIR]

reads DIR/NAME_quick/results.json for every experiment, as `python -m tinyinduction
reproduce all --quick --out DIR` writes them (default DIR: runs/reproduce_all_quick, run
first if it holds no results), and copies them here, one NAME.json each. Run it after
changing what an experiment's results.json holds.
"""
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))
from tinyinduction.experiments import EXPERIMENTS  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "reproduce_all_quick"
if not all((out / f"{name}_quick" / "results.json").exists() for name in EXPERIMENTS):
    subprocess.run([sys.executable, "-m", "tinyinduction", "reproduce", "all", "--quick", "--jobs", "2",
                    "--out", str(out)], check=True, cwd=ROOT)
for name in EXPERIMENTS:
    results = json.loads((out / f"{name}_quick" / "results.json").read_text())
    (HERE / f"{name}.json").write_text(json.dumps(results, separators=(",", ":")) + "\n")
    print(f"{name}: {len(json.dumps(results)) // 1000} kB")
