"""Built-in tasks: spec files (``specs/``), loaders for the publishers' formats
(``loaders/``), the metrics the tasks name (``metrics/``), the published protocols they
can name (``protocols/``), the judge rubrics they name (``rubrics/``) and small demo data
(``demo_data/``). Importing this package registers all of it with the harness.
"""

from pathlib import Path

from aimed.harness import plugins

from . import loaders, metrics, protocols  # noqa: F401  (importing registers them)

plugins.add_spec_dir(Path(__file__).parent / "specs")
plugins.add_rubric_dir(Path(__file__).parent / "rubrics")
