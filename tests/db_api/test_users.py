"""Accounts: sign-up, login check and the acting user."""

from __future__ import annotations

import uuid

import httpx

from harness.factories import (
    DEFAULT_PASSWORD,
    create_user,
    unique_username,
    user_headers,
)


def test_create_user_answers_public_fields_only(db_api_client: httpx.Client) -> None:
    username = unique_username("alice")
    response = db_api_client.post(
        "/users", json={"username": username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "created_at", "role", "status"}
    assert body["username"] == username
    uuid.UUID(body["id"])


def test_username_is_taken_regardless_of_case(db_api_client: httpx.Client) -> None:
    username = unique_username("Bob")
    create_user(db_api_client, username=username)
    for variant in (username, username.upper(), username.lower(), username.swapcase()):
        response = db_api_client.post(
            "/users", json={"username": variant, "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 409, variant
        assert response.json() == {"detail": "Username is already taken"}


def test_verify_accepts_the_right_password_in_any_case_of_username(
    db_api_client: httpx.Client,
) -> None:
    user = create_user(db_api_client, username=unique_username("Carol"))
    response = db_api_client.post(
        "/users/verify",
        json={"username": user["username"].upper(), "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 200
    assert response.json() == user
    assert "password_hash" not in response.text


def test_verify_refuses_wrong_password_and_unknown_user_alike(
    db_api_client: httpx.Client,
) -> None:
    user = create_user(db_api_client)
    wrong_password = db_api_client.post(
        "/users/verify", json={"username": user["username"], "password": "not the password"}
    )
    unknown_user = db_api_client.post(
        "/users/verify", json={"username": unique_username(), "password": DEFAULT_PASSWORD}
    )
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json() == {"detail": "Wrong username or password"}


def test_me_answers_the_acting_user(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    response = db_api_client.get("/users/me", headers=user_headers(user["id"]))
    assert response.status_code == 200
    assert response.json() == user


def test_me_of_an_unknown_user_is_404(db_api_client: httpx.Client) -> None:
    response = db_api_client.get("/users/me", headers=user_headers(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}
