# -*- Python -*-
# The GoogleTest units (<build>/unittests/*Tests) as a lit suite.
import os

import lit.formats

config.name = "LLAMAC-Unit"
config.suffixes = []
config.test_source_root = os.path.join(config.llamac_obj_root, "unittests")
config.test_exec_root = config.test_source_root
config.test_format = lit.formats.GoogleTest(".", "Tests")
