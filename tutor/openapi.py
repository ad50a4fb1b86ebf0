"""The OpenAPI 3.1 description of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand next to the routes; ``tests/tutor/test_openapi.py`` checks that both list the same
paths and methods.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from .api import bp


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed body or unknown subject",
        401: "Not logged in",
        403: "Missing CSRF token or wrong role",
        404: "Unknown id (or not yours)",
        409: "Conflict with the current state",
        422: "Content over the limit, or rows that cannot be imported",
        429: "Over the per-student rate limit",
        503: "Temporarily unavailable",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
REPLY_ID = {"name": "reply_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
AUTHED = (401, 403, 404, 503)

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "AI Tutor API",
        "version": "1",
        "description": "Students chat with the tutor. Cookie sessions (from /auth/login) must send the "
        "X-CSRF-Token header on every POST; embedded pages use `Authorization: Bearer <embed token>` instead.",
    },
    "servers": [{"url": "/"}],
    "components": {
        "securitySchemes": {
            "cookie": {"type": "apiKey", "in": "cookie", "name": "session"},
            "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            "embedToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
            },
            "User": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "role": {"type": "string"},
                    "display_name": {"type": "string"},
                },
            },
            "Login": {
                "type": "object",
                "properties": {"user": _ref("User"), "csrf_token": {"type": "string"}},
            },
            "Subject": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "topics": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                        },
                    },
                },
            },
            "Session": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "subject": {"type": "string"},
                    "status": {"type": "string", "enum": ["active", "ended", "abandoned"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "ended_at": {"type": ["string", "null"], "format": "date-time"},
                    "duration_seconds": {"type": ["integer", "null"]},
                    "satisfaction": {"type": ["integer", "null"]},
                    "comment": {"type": ["string", "null"], "description": "the student's comment with the rating"},
                    "topics": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Message": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "role": {"type": "string", "enum": ["student", "tutor"]},
                    "status": {"type": "string", "enum": ["queued", "streaming", "done", "failed"]},
                    "content": {"type": "string"},
                    "content_html": {"type": "string"},
                    "error": {"type": ["string", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "feedback": {
                        "type": ["string", "null"],
                        "enum": ["up", "down", None],
                        "description": "tutor replies",
                    },
                    "stopped": {"type": "boolean", "description": "tutor replies: the student pressed Stop"},
                },
            },
            "Reply": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "status": {"type": "string", "enum": ["queued", "streaming", "done", "failed"]},
                    "content": {"type": "string"},
                    "content_html": {"type": "string"},
                    "error": {"type": ["string", "null"]},
                    "attempts": {"type": "integer"},
                    "feedback": {"type": ["string", "null"], "enum": ["up", "down", None]},
                    "stopped": {"type": "boolean"},
                },
            },
            "TopicProgress": {
                "type": "object",
                "required": ["subject", "topic", "name", "mastery", "attempts", "correct", "last_attempt"],
                "properties": {
                    "subject": {"type": "string"},
                    "topic": {"type": "string"},
                    "name": {"type": "string"},
                    "mastery": {"type": "number", "minimum": 0, "maximum": 1},
                    "attempts": {"type": "integer", "minimum": 1},
                    "correct": {"type": "integer", "minimum": 0},
                    "last_attempt": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            "Quiz": {
                "type": "object",
                "properties": {
                    "quiz": {"type": "string", "description": "Send it back with the answers (valid 6 hours)"},
                    "subject": {"type": "string"},
                    "topic": {"type": "string"},
                    "name": {"type": "string"},
                    "questions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"index": {"type": "integer"}, "question": {"type": "string"}},
                        },
                    },
                },
            },
            "QuizResult": {
                "type": "object",
                "properties": {
                    "subject": {"type": "string"},
                    "topic": {"type": "string"},
                    "name": {"type": "string"},
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "question": {"type": "string"},
                                "answer": {"type": "string"},
                                "correct": {"type": ["boolean", "null"], "description": "null: skipped"},
                                "expected": {"type": ["string", "null"]},
                                "counted": {
                                    "type": "boolean",
                                    "description": "false: answered before (the first answer counts) or skipped",
                                },
                            },
                        },
                    },
                    "mastery_before": {"type": ["number", "null"]},
                    "progress": {"oneOf": [_ref("TopicProgress"), {"type": "null"}]},
                },
            },
            "Queued": {
                "type": "object",
                "properties": {
                    "message_id": {"type": "integer"},
                    "reply_id": {"type": "integer"},
                    "status": {"const": "queued"},
                    "stream_url": {"type": "string"},
                },
            },
        },
    },
    "security": [{"cookie": [], "csrf": []}, {"embedToken": []}],
    "paths": {
        "/api/v1/auth/login": {
            "post": {
                "summary": "Log in; returns the CSRF token for later POSTs",
                "security": [],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["email", "password"],
                        "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
                    }
                ),
                "responses": {"200": _json(_ref("Login")), **_errors(400, 401, 503)},
            }
        },
        "/api/v1/auth/register": {
            "post": {
                "summary": "Register as a student (and log in)",
                "security": [],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["email", "password"],
                        "properties": {
                            "email": {"type": "string"},
                            "password": {"type": "string", "minLength": 8},
                            "display_name": {"type": "string"},
                            "grade_level": {"type": "integer", "minimum": 1, "maximum": 13},
                        },
                    }
                ),
                "responses": {"201": _json(_ref("Login"), "Created"), **_errors(400, 503)},
            }
        },
        "/api/v1/auth/logout": {
            "post": {"summary": "Log out", "responses": {"200": _json({"type": "object"}), **_errors(403)}}
        },
        "/api/v1/subjects": {
            "get": {
                "summary": "The curriculum's subjects and topics",
                "security": [],
                "responses": {"200": _json({"type": "array", "items": _ref("Subject")})},
            }
        },
        "/api/v1/sessions": {
            "get": {
                "summary": "Own sessions, newest first",
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": _ref("Session")},
                                "page": {"type": "integer"},
                                "per_page": {"type": "integer"},
                                "total": {"type": "integer"},
                            },
                        }
                    ),
                    **_errors(400, 401, 403, 503),
                },
            },
            "post": {
                "summary": "Start a session",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["subject"],
                        "properties": {"subject": {"type": "string"}, "topic": {"type": "string"}},
                    }
                ),
                "responses": {"201": _json(_ref("Session"), "Created"), **_errors(400, 401, 403, 503)},
            },
        },
        "/api/v1/sessions/{session_id}": {
            "get": {
                "summary": "A session with its messages",
                "parameters": [SESSION_ID],
                "responses": {
                    "200": _json(
                        {
                            "allOf": [
                                _ref("Session"),
                                {"properties": {"messages": {"type": "array", "items": _ref("Message")}}},
                            ]
                        }
                    ),
                    **_errors(*AUTHED),
                },
            }
        },
        "/api/v1/sessions/{session_id}/messages": {
            "post": {
                "summary": "Send a message; the tutor's reply is queued",
                "parameters": [SESSION_ID],
                "requestBody": _body(
                    {"type": "object", "required": ["content"], "properties": {"content": {"type": "string"}}}
                ),
                "responses": {"202": _json(_ref("Queued"), "Accepted"), **_errors(400, *AUTHED, 409, 422, 429)},
            }
        },
        "/api/v1/sessions/{session_id}/end": {
            "post": {
                "summary": "End a session",
                "parameters": [SESSION_ID],
                "responses": {"200": _json(_ref("Session")), **_errors(*AUTHED)},
            }
        },
        "/api/v1/sessions/{session_id}/rating": {
            "post": {
                "summary": "Rate a session from 1 to 5",
                "parameters": [SESSION_ID],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["rating"],
                        "properties": {
                            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                            "comment": {"type": "string", "maxLength": 2000},
                        },
                    }
                ),
                "responses": {"200": _json({"type": "object"}), **_errors(400, *AUTHED)},
            }
        },
        "/api/v1/progress": {
            "get": {
                "summary": "Own mastery per topic (topics with at least one graded attempt)",
                "description": "mastery is the probability that the student knows the topic (Bayesian Knowledge "
                "Tracing over their graded answers); see docs/ANALYTICS.md.",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["topics"],
                            "properties": {"topics": {"type": "array", "items": _ref("TopicProgress")}},
                        }
                    ),
                    **_errors(401, 403, 503),
                },
            }
        },
        "/api/v1/quiz": {
            "post": {
                "summary": "Quiz me: up to five questions on a topic (check questions, then new maths ones)",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["subject", "topic"],
                        "properties": {"subject": {"type": "string"}, "topic": {"type": "string"}},
                    }
                ),
                "responses": {"201": _json(_ref("Quiz"), "Created"), **_errors(400, 401, 403, 409, 503)},
            }
        },
        "/api/v1/quiz/answers": {
            "post": {
                "summary": "Answer a quiz: every answer is graded and recorded as an attempt",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["quiz", "answers"],
                        "properties": {
                            "quiz": {"type": "string"},
                            "answers": {"type": "array", "items": {"type": ["string", "null"]}},
                        },
                    }
                ),
                "responses": {"200": _json(_ref("QuizResult")), **_errors(400, 401, 403, 503)},
            }
        },
        "/api/v1/messages/{reply_id}": {
            "get": {
                "summary": "A tutor reply's status and content",
                "parameters": [REPLY_ID],
                "responses": {"200": _json(_ref("Reply")), **_errors(*AUTHED)},
            }
        },
        "/api/v1/messages/{reply_id}/stream": {
            "get": {
                "summary": "Server-sent events: token, reset, done, error (resume with Last-Event-ID)",
                "description": (
                    "A finished reply answers at once and closes. A malformed Last-Event-ID, or one past the "
                    "end of the stream, means from the start. A student may hold STREAMS_PER_STUDENT streams "
                    "open and open STREAM_OPEN_RATE_LIMIT of them (429 beyond either); 503 while Redis is down."
                ),
                "parameters": [REPLY_ID, {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(*AUTHED, 429),
                },
            }
        },
        "/api/v1/messages/{reply_id}/retry": {
            "post": {
                "summary": "Retry a failed reply",
                "parameters": [REPLY_ID],
                "responses": {"202": _json(_ref("Queued"), "Accepted"), **_errors(*AUTHED, 409)},
            }
        },
        "/api/v1/messages/{reply_id}/stop": {
            "post": {
                "summary": "Stop a reply being written; it keeps the text written so far (stopped: true)",
                "parameters": [REPLY_ID],
                "responses": {
                    "200": _json({"type": "object"}, "Already finished: nothing to stop"),
                    "202": _json(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer"},
                                "status": {"type": "string", "enum": ["done", "stopping"]},
                                "stopped": {"const": True},
                            },
                        },
                        "Stopping (the stream ends with done)",
                    ),
                    **_errors(*AUTHED, 503),
                },
            }
        },
        "/api/v1/messages/{reply_id}/feedback": {
            "post": {
                "summary": "Thumbs up or down on a finished tutor reply (null clears it)",
                "parameters": [REPLY_ID],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["feedback"],
                        "properties": {"feedback": {"type": ["string", "null"], "enum": ["up", "down", None]}},
                    }
                ),
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer"},
                                "feedback": {"type": ["string", "null"], "enum": ["up", "down", None]},
                            },
                        }
                    ),
                    **_errors(*AUTHED, 400, 409),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "security": [], "responses": {"200": _json({"type": "object"})}}
        },
    },
}


CLASS_ID = {"name": "class_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
STUDENT_ID = {"name": "student_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
SPEC["components"]["schemas"] |= {
    "Class": {
        "type": "object",
        "required": ["id", "name"],
        "description": "Teachers and admins see join_code and students (the number of students); students "
        "see the teacher's name.",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "subject": {"type": ["string", "null"]},
            "join_code": {"type": "string", "description": "Six letters and digits without look-alikes (ABC-23K)"},
            "students": {"type": "integer"},
            "teacher": {"type": "string"},
        },
    },
    "RosterStudent": {
        "type": "object",
        "required": ["id", "display_name", "grade_level", "sessions", "last_active", "mastery"],
        "properties": {
            "id": {"type": "integer"},
            "display_name": {"type": "string"},
            "email": {"type": "string"},
            "grade_level": {"type": ["integer", "null"]},
            "sessions": {"type": "integer"},
            "last_active": {"type": ["string", "null"], "format": "date-time"},
            "mastery": {
                "type": ["number", "null"],
                "description": "Mean P(known) over the topics the student has graded answers in (null: none yet)",
            },
            "topics_mastered": {"type": "integer"},
        },
    },
}
SPEC["paths"] |= {
    "/api/v1/classes": {
        "get": {
            "summary": "Classes: a teacher's own, every class for an admin, the joined ones for a student",
            "responses": {
                "200": _json({"type": "object", "properties": {"items": {"type": "array", "items": _ref("Class")}}}),
                **_errors(401, 503),
            },
        },
        "post": {
            "summary": "Create a class (teachers and admins); it comes with a join code",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "maxLength": 120}, "subject": {"type": "string"}},
                }
            ),
            "responses": {"201": _json(_ref("Class"), "Created"), **_errors(400, 401, 403, 503)},
        },
    },
    "/api/v1/classes/join": {
        "post": {
            "summary": "Join a class with its code (students); joining twice is harmless",
            "requestBody": _body(
                {"type": "object", "required": ["join_code"], "properties": {"join_code": {"type": "string"}}}
            ),
            "responses": {"200": _json(_ref("Class")), **_errors(400, 401, 403, 404, 429, 503)},
        }
    },
    "/api/v1/classes/{class_id}/join_code": {
        "post": {
            "summary": "A new join code for the class (the old one stops working)",
            "parameters": [CLASS_ID],
            "responses": {"200": _json(_ref("Class")), **_errors(*AUTHED)},
        }
    },
    "/api/v1/classes/{class_id}/students": {
        "get": {
            "summary": "The class's roster (its teacher and admins; another teacher's class is 404)",
            "parameters": [CLASS_ID],
            "responses": {"200": _json({"type": "array", "items": _ref("RosterStudent")}), **_errors(*AUTHED)},
        },
        "post": {
            "summary": "Import students from CSV text (e-mail, name, grade), all or nothing",
            "description": "Existing student accounts are added; new e-mails get a student account with a first "
            "password, returned once. A file with any bad row imports nothing: 422 lists every bad row by line.",
            "parameters": [CLASS_ID],
            "requestBody": _body({"type": "object", "required": ["csv"], "properties": {"csv": {"type": "string"}}}),
            "responses": {"200": _json({"type": "object"}), **_errors(400, *AUTHED, 422)},
        },
    },
    "/api/v1/classes/{class_id}/students/{student_id}": {
        "delete": {
            "summary": "Remove a student from the class (their account and sessions stay)",
            "parameters": [CLASS_ID, STUDENT_ID],
            "responses": {"200": _json({"type": "object"}), **_errors(*AUTHED)},
        }
    },
    "/api/v1/classes/{class_id}/students/{student_id}/sessions": {
        "get": {
            "summary": "A student's sessions, newest first (their teacher and admins)",
            "parameters": [CLASS_ID, STUDENT_ID],
            "responses": {
                "200": _json({"type": "object", "properties": {"items": {"type": "array", "items": _ref("Session")}}}),
                **_errors(*AUTHED),
            },
        }
    },
    "/api/v1/classes/{class_id}/students/{student_id}/sessions/{session_id}/messages": {
        "get": {
            "summary": "A session's transcript; every read is recorded in the audit log",
            "parameters": [CLASS_ID, STUDENT_ID, SESSION_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "session": _ref("Session"),
                            "items": {"type": "array", "items": _ref("Message")},
                        },
                    }
                ),
                **_errors(*AUTHED),
            },
        }
    },
}


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(SPEC)
