from datetime import timedelta
from django.utils import timezone
from audit.demo import BASE_TIME
from reports.period import build_period_report, Window, sign_period_report, render_period_json
from reports.period_rendering import render_period_pdf
from tests.reports.report_support import schema_errors
import json

def test_smoke(seeded):
    w = Window(BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=2))
    r = sign_period_report(build_period_report(seeded.account, window=w, generated_at=timezone.now()))
    doc = json.loads(render_period_json(r))
    print(json.dumps(doc, indent=1)[:3000])
    assert schema_errors(doc) == []
    pdf = render_period_pdf(r)
    open("/tmp/period_scratch/p.pdf", "wb").write(pdf)
