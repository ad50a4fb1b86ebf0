"""The OpenAPI document lists exactly the routes under /api/v1, with their methods."""

import re


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((path, method.lower()))
    return out


def test_spec_matches_routes(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert documented == _routes(app)


def test_every_operation_documents_its_errors_and_path_parameters(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path, ops in spec["paths"].items():
        params = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params, (path, method)
            if op.get("security") != []:
                assert "401" in op["responses"] or method == "post" and path.endswith("logout"), (path, method)
