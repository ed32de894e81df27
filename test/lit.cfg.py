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
tools = ["llamac-opt", ToolSubst("llamac", unresolved="ignore")]
llvm_config.add_tool_substitutions(tools, tool_dirs)

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
