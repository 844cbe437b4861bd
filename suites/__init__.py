"""The suite files (YAML), installed with the package as `tssl_suites` so `tssl run NAME` works anywhere."""
