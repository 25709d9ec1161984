"""The writer's lease on a reply and the fair queue for model slots (PostgreSQL decides).

Each test starts with an empty queue, on a db-api and database of this module's own:
the queue is shared by every user, and other modules leave replies waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from harness.db_api import DbApiServer, running_db_api
from harness.factories import (
    auth_headers,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
    user_headers,
)
from harness.postgres import PostgresCluster

SLOTS = 2


@pytest.fixture(scope="module")
def queue_db_api(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    with running_db_api(postgres, database="db_api_reply_jobs") as server:
        yield server


@pytest.fixture(scope="module")
def engine(queue_db_api: DbApiServer) -> Iterator[Engine]:
    engine = create_engine(queue_db_api.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(queue_db_api: DbApiServer, engine: Engine) -> Iterator[httpx.Client]:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM reply_jobs"))
        connection.execute(text("DELETE FROM model_slots"))
    headers = auth_headers(queue_db_api.service_token)
    with httpx.Client(base_url=queue_db_api.url, headers=headers) as client:
        yield client


def _started(client: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new user with a new chat whose reply is being written: (user, turn)."""
    user = create_user(client)
    chat = create_chat(client, user_id=user["id"])
    return user, create_turn(client, user_id=user["id"], chat_id=chat["id"])


def _lease(
    client: httpx.Client, user: dict[str, Any], turn: dict[str, Any], slots: int = SLOTS
) -> httpx.Response:
    reply = turn["reply"]
    return client.put(
        f"/chats/{reply['chat_id']}/messages/{reply['id']}/lease",
        json={"slots": slots},
        headers=user_headers(user["id"]),
    )


def _granted(client: httpx.Client, user: dict[str, Any], turn: dict[str, Any]) -> int | None:
    response = _lease(client, user, turn)
    assert response.status_code == 200, response.text
    slot: int | None = response.json()["slot"]
    return slot


def _position(client: httpx.Client, user: dict[str, Any], turn: dict[str, Any]) -> int | None:
    response = _lease(client, user, turn)
    assert response.status_code == 200, response.text
    position: int | None = response.json()["position"]
    return position


def _lapse(engine: Engine, turn: dict[str, Any]) -> None:
    """As if the writer died: its lease ran out (instead of waiting 10 s for it)."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE reply_jobs SET lease_expires_at = now() - interval '1 second' "
                "WHERE message_id = :id"
            ),
            {"id": turn["reply"]["id"]},
        )


def _reply(client: httpx.Client, user: dict[str, Any], turn: dict[str, Any]) -> dict[str, Any]:
    reply = turn["reply"]
    response = client.get(
        f"/chats/{reply['chat_id']}/messages/{reply['id']}", headers=user_headers(user["id"])
    )
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()
    return message


def test_slots_go_to_waiting_replies_in_the_order_they_were_started(
    client: httpx.Client,
) -> None:
    (a, a_turn), (b, b_turn), (c, c_turn), (d, d_turn) = (_started(client) for _ in range(4))
    assert {_granted(client, a, a_turn), _granted(client, b, b_turn)} == {0, 1}
    # Every slot is busy: the others wait, in order, and say so on every renewal.
    assert _position(client, d, d_turn) == 2
    assert _position(client, c, c_turn) == 1
    body = _lease(client, c, c_turn).json()
    assert body == {"slot": None, "position": 1, "lease_seconds": 30.0}
    # A process that only follows a reply reads its place with the message.
    assert _reply(client, d, d_turn)["queue_position"] == 2
    assert _reply(client, c, c_turn)["queue_position"] == 1
    assert _reply(client, a, a_turn)["queue_position"] is None

    finish_reply(client, user_id=a["id"], turn=a_turn)
    # D asks first, but C waited longer: D's place is still second.
    assert _position(client, d, d_turn) == 2
    assert _granted(client, c, c_turn) is not None
    assert _position(client, d, d_turn) == 1
    assert _reply(client, d, d_turn)["queue_position"] == 1
    assert _reply(client, c, c_turn)["queue_position"] is None
    # A renewal by a writer that holds its slot keeps it.
    assert _granted(client, b, b_turn) == _granted(client, b, b_turn)


def test_a_stopped_reply_frees_its_slot_and_its_writer_is_told(client: httpx.Client) -> None:
    writers = [_started(client) for _ in range(SLOTS)]
    for user, turn in writers:
        assert _granted(client, user, turn) is not None
    waiting_user, waiting_turn = _started(client)
    assert _position(client, waiting_user, waiting_turn) == 1

    user, turn = writers[0]
    reply = turn["reply"]
    stopped = client.patch(
        f"/chats/{reply['chat_id']}/messages/{reply['id']}",
        json={"status": "stopped", "if_status": "generating"},
        headers=user_headers(user["id"]),
    )
    assert stopped.status_code == 200
    assert _granted(client, waiting_user, waiting_turn) is not None
    refused = _lease(client, user, turn)
    assert refused.status_code == 409
    assert refused.json()["status"] == "stopped"


def test_a_chat_goes_back_to_the_slot_that_holds_its_prompt(client: httpx.Client) -> None:
    alice = create_user(client)
    chat = create_chat(client, user_id=alice["id"])
    first = create_turn(client, user_id=alice["id"], chat_id=chat["id"])
    home = _granted(client, alice, first)
    finish_reply(client, user_id=alice["id"], turn=first)
    # Another chat gets the slot nobody used yet, not the one holding Alice's prompt.
    bob, bob_turn = _started(client)
    assert _granted(client, bob, bob_turn) not in (None, home)
    finish_reply(client, user_id=bob["id"], turn=bob_turn)
    # Both are free now; Alice's chat gets its own back.
    second = create_turn(client, user_id=alice["id"], chat_id=chat["id"])
    assert _granted(client, alice, second) == home
    # With her slot busy, a newcomer gets the one idle the longest (Bob's).
    carol, carol_turn = _started(client)
    assert _granted(client, carol, carol_turn) not in (None, home)


def test_a_writer_that_died_mid_reply_leaves_a_failed_reply_and_a_free_chat(
    client: httpx.Client, engine: Engine
) -> None:
    user, turn = _started(client)
    assert _granted(client, user, turn) is not None
    reply = turn["reply"]
    saved = client.patch(
        f"/chats/{reply['chat_id']}/messages/{reply['id']}",
        json={"content": "The first half", "if_status": "generating"},
        headers=user_headers(user["id"]),
    )
    assert saved.status_code == 200
    _lapse(engine, turn)

    # The next reader sees it failed, with the text it had saved.
    shown = _reply(client, user, turn)
    assert (shown["status"], shown["content"]) == ("error", "The first half")
    chat = client.get(f"/chats/{reply['chat_id']}", headers=user_headers(user["id"])).json()
    assert [m["status"] for m in chat["messages"]] == ["complete", "error"]
    # The writer, should it come back, is told to stop.
    assert _lease(client, user, turn).status_code == 409
    # A new message in that chat starts a reply without anyone pressing Stop.
    again = client.post(
        f"/chats/{reply['chat_id']}/turns",
        json={"content": "Again?"},
        headers=user_headers(user["id"]),
    )
    assert again.status_code == 201, again.text


def test_a_lapsed_writer_no_longer_holds_its_user_or_its_slot(
    client: httpx.Client, engine: Engine
) -> None:
    user, turn = _started(client)
    slot = _granted(client, user, turn)
    _lapse(engine, turn)
    # The same user starts a reply in another chat: the dead one does not count.
    other_chat = create_chat(client, user_id=user["id"])
    elsewhere = create_turn(client, user_id=user["id"], chat_id=other_chat["id"])
    assert _granted(client, user, elsewhere) is not None
    # Its slot is free for others too; the first of them may get it.
    others = [_started(client) for _ in range(SLOTS - 1)]
    granted = {_granted(client, u, t) for u, t in others}
    assert slot in granted | {_granted(client, user, elsewhere)}


def test_a_reply_that_waited_when_its_writer_died_is_taken_over_in_its_place(
    client: httpx.Client, engine: Engine
) -> None:
    for user, turn in [_started(client) for _ in range(SLOTS)]:
        assert _granted(client, user, turn) is not None
    orphan_user, orphan = _started(client)
    later_user, later = _started(client)
    assert _position(client, orphan_user, orphan) == 1
    assert client.post("/reply-jobs/adopt").status_code == 204  # every writer is alive
    _lapse(engine, orphan)

    # Waiting with a dead writer is not a failure: the reply is still to be written.
    assert _reply(client, orphan_user, orphan)["status"] == "generating"
    adopted = client.post("/reply-jobs/adopt")
    assert adopted.status_code == 200
    assert adopted.json() == {
        "message_id": orphan["reply"]["id"],
        "chat_id": orphan["reply"]["chat_id"],
        "owner_id": orphan_user["id"],
    }
    # It has a new writer now (a fresh lease) and kept its place ahead of the later one.
    assert client.post("/reply-jobs/adopt").status_code == 204
    assert _position(client, later_user, later) == 2
    assert _position(client, orphan_user, orphan) == 1


def test_racing_writers_never_get_more_slots_than_there_are(
    queue_db_api: DbApiServer, client: httpx.Client
) -> None:
    """Twelve writers ask at once (as from several replicas): exactly SLOTS get one."""
    started = [_started(client) for _ in range(12)]

    def ask(entry: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        headers = auth_headers(queue_db_api.service_token)
        with httpx.Client(base_url=queue_db_api.url, headers=headers) as own:
            response = _lease(own, *entry)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(ask, started))
    slots = [answer["slot"] for answer in answers if answer["slot"] is not None]
    assert sorted(slots) == list(range(SLOTS))
    # Asked again, the waiting ones have one place each, in the order they were started.
    pairs = zip(started, answers, strict=True)
    waiting = [entry for entry, answer in pairs if answer["slot"] is None]
    assert [_position(client, *entry) for entry in waiting] == list(range(1, 12 - SLOTS + 1))


def test_a_smaller_model_server_puts_a_reply_on_a_slot_it_has(client: httpx.Client) -> None:
    writers = [_started(client) for _ in range(4)]
    for user, turn in writers:
        assert _lease(client, user, turn, slots=4).json()["slot"] is not None
    # The model server restarted with 2 slots: replies on slots 2 and 3 wait for 0 and 1.
    answers = [_lease(client, user, turn, slots=2).json() for user, turn in writers]
    assert sorted(a["slot"] for a in answers if a["slot"] is not None) == [0, 1]
    assert all(a["slot"] is None or a["slot"] < 2 for a in answers)


def test_a_turn_that_names_the_slot_count_gets_a_free_slot_at_once(client: httpx.Client) -> None:
    def turn_with_slots() -> tuple[dict[str, Any], dict[str, Any]]:
        user = create_user(client)
        chat = create_chat(client, user_id=user["id"])
        response = client.post(
            f"/chats/{chat['id']}/turns",
            json={"content": "Hello?", "slots": SLOTS},
            headers=user_headers(user["id"]),
        )
        assert response.status_code == 201, response.text
        turn: dict[str, Any] = response.json()
        return user, turn

    granted = [turn_with_slots() for _ in range(SLOTS)]
    assert sorted(turn["slot"] for _user, turn in granted) == list(range(SLOTS))
    # The renewal keeps the slot the turn was given.
    user, turn = granted[0]
    assert _granted(client, user, turn) == turn["slot"]
    # Every slot busy: no slot with the turn, a place in the queue when asked.
    waiting_user, waiting = turn_with_slots()
    assert waiting["slot"] is None
    assert _position(client, waiting_user, waiting) == 1
