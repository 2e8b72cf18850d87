"""The session page opens with the verdict: an alert banner naming and linking the alerts (no green banner) when
there are any, green only for a clean call; alerts above the collapsed Safe Harbor matrix; the external reference;
why a call ended in error, as far as its log says."""

import re

import pytest

pytestmark = pytest.mark.django_db


def _html(client, seeded, ref: str) -> str:
    session = next(s for s in seeded.sessions if s.external_ref == ref)
    response = client.get(f"/sessions/{session.id}/")
    assert response.status_code == 200
    return response.content.decode()


def _main(html: str) -> str:
    return html.split('<main id="main"', 1)[1]


def test_leak_call_opens_with_a_red_banner_linking_each_alert_and_no_green_banner(acme_client, seeded):
    main = _main(_html(acme_client, seeded, "call-rehydration-0003"))
    banner = re.search(r'<div class="notice (\w+) verdict" role="alert" id="verdict">(.*?)</div>\s*</div>', main, re.S)
    assert banner and banner.group(1) == "bad"
    assert "Verdict: 3 alerts in this call." in banner.group(2)
    links = re.findall(r'<a href="#(alert-\d+)">([^<]+)</a>: (\d+)', banner.group(2))
    assert links == [
        ("alert-3", "Rehydration failed", "1"),
        ("alert-4", "Residual PHI leak", "1"),
        ("alert-5", "Detection degraded", "1"),
    ]
    for anchor, _, _ in links:
        assert f'<tr id="{anchor}">' in main
    assert "notice good" not in main
    # The verdict comes first, then the alerts, and the Safe Harbor matrix after them, collapsed to its summary.
    assert main.index('id="verdict"') < main.index('id="alerts-title"') < main.index('id="sh-title"')
    matrix = main.split('id="sh-title"', 1)[1]
    assert re.search(r'<details class="matrix-details">\s*<summary>96.9% coverage: 15 full, 1 partial', matrix)
    assert '<details class="matrix-details" open' not in matrix


def test_a_call_whose_only_alert_is_degraded_detection_is_amber(acme_client, seeded):
    from datetime import timedelta

    from audit.timestamps import format_ts
    from audit.writing import append_events, end_session, start_session
    from tests.conftest import T0

    session, _ = start_session(seeded.session("call-intake-0001").agent, external_ref="amber-call", started_at=T0)
    append_events(session, [{"ts": format_ts(T0), "kind": "detection.degraded", "turn": 1, "reason": "ner_timeout"}])
    end_session(session, status="partial", now=T0 + timedelta(seconds=5))
    main = _main(acme_client.get(f"/sessions/{session.id}/").content.decode())
    assert '<div class="notice warn verdict" role="alert" id="verdict">' in main
    assert "Logged during the call: ner_timeout (detection degraded)." in main


def test_clean_call_has_the_green_verdict_and_no_alert_banner(acme_client, seeded):
    main = _main(_html(acme_client, seeded, "call-intake-0001"))
    assert '<div class="notice good verdict" role="status" id="verdict">' in main
    assert "Verdict: no alerts." in main
    assert 'role="alert"' not in main
    assert 'id="end-reason"' not in main


def test_error_end_without_a_logged_reason_says_so(acme_client, seeded):
    main = _main(_html(acme_client, seeded, "call-empty-0005"))
    reason = re.search(r'<div class="notice bad" role="status" id="end-reason">(.*?)</div>', main, re.S).group(1)
    assert "Ended with an error." in reason
    assert "No reason recorded" in " ".join(reason.split())


def test_partial_end_shows_the_reason_logged_during_the_call(acme_client, seeded):
    main = _main(_html(acme_client, seeded, "call-rehydration-0003"))
    reason = re.search(r'id="end-reason">(.*?)</div>', main, re.S).group(1)
    assert "Ended partially." in reason and "ner_timeout" in reason


def test_external_reference_is_on_the_session_page_and_the_list(acme_client, seeded):
    main = _main(_html(acme_client, seeded, "call-payment-0002"))
    assert '<strong class="mono break" id="external-ref">call-payment-0002</strong>' in main
    listing = acme_client.get("/sessions/").content.decode()
    refs = re.findall(r'<td data-label="External reference" class="mono break">([^<]+)</td>', listing)
    assert sorted(refs) == sorted(s.external_ref for s in seeded.sessions)


def test_session_page_has_the_timeline_with_a_text_alternative(acme_client, seeded):
    main = _main(_html(acme_client, seeded, "call-rehydration-0003"))
    svg = re.search(r"<svg .*?</svg>", main.split('id="timeline-heading"', 1)[1], re.S).group(0)
    assert 'role="img"' in svg and 'aria-labelledby="timeline-title timeline-desc"' in svg
    assert main.count('id="timeline-title"') == 1  # ids stay unique on the page
    desc = re.search(r'<desc id="timeline-desc">([^<]+)</desc>', svg).group(1)
    assert desc == (
        "Timeline of the call, turns 1 to 2: 1 redaction, 1 egress event and 3 alerts. Most redactions in turn 1 "
        "(1). Alerts in turn 1, turn 2."
    )
    assert "<script" not in svg and "style=" not in svg
