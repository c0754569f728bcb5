"Every public function of more than one parameter documents each parameter with a trailing comment (docments), so `show_doc` renders them."
import importlib, inspect, pkgutil

from fastcore.docments import docments

import ft_nb


def _public_functions():
    for m in pkgutil.walk_packages(ft_nb.__path__, "ft_nb."):
        if m.name.rsplit(".", 1)[-1].startswith("_"): continue
        mod = importlib.import_module(m.name)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__: yield f"{m.name}.{name}", obj


def test_public_functions_have_docments():
    missing = {}
    for qual, fn in _public_functions():
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # docments leaves *args, **kw out
        if len(params) < 2: continue
        docs = docments(fn)
        if lacking := [p.name for p in params if not docs.get(p.name)]: missing[qual] = lacking
    assert missing == {}, missing
