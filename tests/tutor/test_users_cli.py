from sqlalchemy import text

from foundation.extensions import db
from tutor.users import find_user_by_email, verify_password


def test_create_admin(runner, app_ctx):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Ada@Example.org",
            "--password",
            "correct horse",
            "--role",
            "admin",
            "--name",
            "Ada",
        ]
    )
    assert result.exit_code == 0, result.output
    user = find_user_by_email("ada@example.org")
    assert user.role == "admin" and user.display_name == "Ada"
    assert user.password_hash != "correct horse"
    assert verify_password(user, "correct horse")
    assert not verify_password(user, "wrong password")


def test_create_student_with_grade(runner, app_ctx):
    result = runner.invoke(
        args=["users", "create", "--email", "kid@school.org", "--password", "learning-4567", "--grade", "7"]
    )
    assert result.exit_code == 0, result.output
    assert find_user_by_email("KID@school.org").grade_level == 7


def test_duplicate_email_in_other_case_is_refused(runner, app_ctx):
    runner.invoke(args=["users", "create", "--email", "a@b.org", "--password", "learning-4567"])
    result = runner.invoke(args=["users", "create", "--email", "A@B.org", "--password", "learning-4567"])
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert db.session.execute(text("SELECT count(*) FROM users")).scalar_one() == 1


def test_bad_input_is_explained(runner, app_ctx):
    assert "at least 8" in runner.invoke(args=["users", "create", "--email", "a@b.org", "--password", "short"]).output
    assert (
        "not an e-mail"
        in runner.invoke(args=["users", "create", "--email", "nope", "--password", "learning-4567"]).output
    )
    bad_role = runner.invoke(
        args=["users", "create", "--email", "a@b.org", "--password", "learning-4567", "--role", "root"]
    )
    assert bad_role.exit_code != 0
