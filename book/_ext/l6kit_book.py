"""A small Sphinx extension for the l6kit book.

Jupyter Book 1 registers some inline scripts twice per page (sphinx-thebe's ``const THEBE_JS_URL`` and the
toggle-button selector); the second ``const`` declaration is a JavaScript error in every page. This drops
exact duplicate script entries before the page is rendered.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
