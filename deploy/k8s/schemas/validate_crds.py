"""Validates the custom resources of rendered manifests against the schemas beside this file.

Usage: python validate_crds.py RENDERED.yaml

kubernetes-validate knows the Kubernetes API's own kinds; the custom resources used here
(Gateway API, CloudNativePG) are checked against the schemas in this directory, which are
written for the fields the repository uses (see each schema's description). Any object whose
API group is not Kubernetes' own and has no schema here is an error, so nothing goes unchecked.
Exit status 1 on any error, each printed.
"""

import json
import pathlib
import sys

import jsonschema
import yaml

HERE = pathlib.Path(__file__).parent
BUILT_IN = {"", "v1", "apps", "policy", "networking.k8s.io", "batch", "autoscaling", "rbac.authorization.k8s.io"}


def main(path):
    errors = []
    checked = 0
    with open(path) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    for document in documents:
        api_version = document.get("apiVersion", "")
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        if group in BUILT_IN:
            continue
        kind = document.get("kind", "")
        name = document.get("metadata", {}).get("name", "?")
        schema_path = HERE / f"{api_version.replace('/', '_')}_{kind}.json"
        if not schema_path.exists():
            errors.append(f"{kind} {name}: no schema for {api_version} {kind} in {HERE}")
            continue
        schema = json.loads(schema_path.read_text())
        validator = jsonschema.Draft202012Validator(schema)
        for error in validator.iter_errors(document):
            location = "/".join(str(p) for p in error.absolute_path) or "(root)"
            errors.append(f"{kind} {name}: {location}: {error.message}")
        checked += 1
    for error in errors:
        print(error)
    print(f"{checked} custom resources checked, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
