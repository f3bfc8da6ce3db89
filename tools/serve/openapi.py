"""The OpenAPI 3.1 description served at ``/openapi.json`` (Starlette has no generator without YAML)."""

from __future__ import annotations

_ERROR = {"description": "refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(model: dict, limits) -> dict:
    """Return the API's OpenAPI document, with this server's model and limits in its text."""
    mb = limits.max_upload_bytes / 2**20
    record = {
        "type": "object",
        "required": ["source", "label", "confidence", "top_k", "probabilities", "time_ms"],
        "properties": {
            "source": {"description": "the upload's file name, or the image's index", "type": ["string", "integer"]},
            "label": {"type": "integer", "minimum": 0, "maximum": 9},
            "confidence": {"type": "number"},
            "top_k": {"type": "array", "items": {"type": "array", "prefixItems": [
                {"type": "integer"}, {"type": "number"}]}, "description": "[[digit, probability], ...]"},
            "probabilities": {"type": "array", "items": {"type": "number"}, "minItems": 10, "maxItems": 10},
            "time_ms": {"type": "number", "description": "decode + preprocess + inference of this image"},
            "input_png": {"type": "string", "description": "with ?debug=1: the 28x28 input as a PNG data URL"},
        },
    }
    errors = {
        "400": {**_ERROR, "description": "bad image: corrupt, truncated, or no digit found"},
        "413": {**_ERROR, "description": f"over {mb:g} MB, over {limits.max_images} images, or too many "
                                          "pixels (checked before decoding)"},
        "415": {**_ERROR, "description": "not an image of a supported format"},
        "422": {**_ERROR, "description": "bad parameters (top_k, debug, missing image field)"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mnistkit serve", "version": "1",
                 "description": f"Classify handwritten digits with {model.get('file')} "
                                f"({model.get('format')} {model.get('mode')}, {model.get('backend')})."},
        "paths": {
            "/api/classify": {"post": {
                "summary": "Classify one or several digit images",
                "parameters": [
                    {"name": "top_k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10,
                                                                 "default": 3}},
                    {"name": "debug", "in": "query", "schema": {"type": "boolean", "default": False},
                     "description": "add input_png, the 28x28 image the model saw"},
                ],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                                  "maxItems": limits.max_images},
                        "top_k": {"type": "integer"}}, "required": ["image"]}},
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                }},
                "responses": {"200": {"description": "one record per image, in order", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "results": {"type": "array", "items": record},
                        "summary": {"type": "object"}}}}}}, **errors},
            }},
            "/api/model": {"get": {"summary": "The model being served: format, mode, backend, sha256, "
                                              "accuracy, parity, limits",
                                   "responses": {"200": {"description": "model description"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
        },
        "components": {"schemas": {"Error": {"type": "object", "required": ["error", "status"], "properties": {
            "error": {"type": "string"}, "status": {"type": "integer"}}}}},
    }
