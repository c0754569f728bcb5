# Sphinx configuration of ft_nb's documentation site; `python docs/build.py` assembles the sources
# (the executed notebooks, their API reference, the generated pages) beside this file's copy.
project = "ft_nb"
author = "ft_nb developers"
extensions = ["myst_nb"]
nb_execution_mode = "off"  # the notebooks are committed executed (docs/execute.py): the site shows their stored outputs
nb_render_markdown_format = "myst"  # markdown outputs (tables from `Markdown(...)`) parsed as MyST, which has tables
myst_enable_extensions = ["colon_fence", "dollarmath"]
html_theme = "sphinx_book_theme"
html_title = "ft_nb"
html_theme_options = {"show_toc_level": 2, "navigation_with_keys": False}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header", "myst.xref_missing", "mystnb.unknown_mime_type", "misc.highlighting_failure", "toc.not_included"]
