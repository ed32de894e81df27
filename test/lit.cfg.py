# -*- Python -*-
# lit configuration of the llamac regression tests.
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "LLAMAC"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.llamac_obj_root, "test")
# The GoogleTest units have their own lit config; Inputs hold data files.
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py",
                   "lit.site.cfg.py"]

config.environment["FILECHECK_OPTS"] = "-enable-var-scope"
config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%torch_python", config.torch_python))
config.substitutions.append(("%llamac_src", config.llamac_src_root))
config.substitutions.append(("%llamac_obj", config.llamac_obj_root))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.llamac_tools_dir, config.llvm_tools_dir]
tools = ["llamac-opt", ToolSubst("llamac", unresolved="ignore"),
         ToolSubst("llamac-mpi-comm-tests", unresolved="ignore"),
         ToolSubst("llamac-mpi-exec-tests", unresolved="ignore"),
         ToolSubst("llamac-float16-oracle", unresolved="ignore"),
         ToolSubst("llamac-cudasim", unresolved="ignore"),
         ToolSubst("llamac-cuda-bench-sim", unresolved="ignore")]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# Multi-rank tests (test/e2e/mpi-*.test) need the MPI build and mpirun.
# %mpirun runs as root in CI containers and oversubscribes small machines;
# one OpenMP thread per rank keeps N ranks from fighting over the cores.
import shutil
mpirun = shutil.which("mpirun")
if getattr(config, "mpi_enabled", False) and mpirun:
    config.available_features.add("mpi")
    config.substitutions.append(
        ("%mpirun", "env OMP_NUM_THREADS=1 %s --allow-run-as-root "
         "--oversubscribe" % mpirun))

# The PyTorch reference runs on Debian's python3-torch (/usr/bin/python3).
import subprocess
try:
    subprocess.run([config.torch_python, "-c", "import torch"], check=True,
                   capture_output=True, timeout=120)
    config.available_features.add("torch")
except Exception:
    lit_config.note("torch not importable by %s: parity tests are skipped"
                    % config.torch_python)
config.substitutions.append(("%python", config.python_executable))

# A usable NVIDIA GPU (the driver answers nvidia-smi -L with a GPU): the
# CUDA-only checks run, and the "no GPU" error checks do not.
try:
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                         timeout=30)
    if out.returncode == 0 and "GPU" in out.stdout:
        config.available_features.add("cuda-gpu")
except Exception:
    pass
