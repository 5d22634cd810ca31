"""The season report as a PDF (fpdf2, pure Python): the page's figures in the page's
words, Danish or English, for every site or one association."""

from __future__ import annotations

import re
import zlib

import httpx

from .test_fleet import SEASON
from .test_fleet_dashboard import fill, kpis
from .test_fleet_dashboard import served as served  # noqa: F401  (the fixture: a served fleet)


def pdf_text(body: bytes) -> str:
    """The text a PDF's pages write (fpdf2 compresses each page's stream)."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S)
    shown = []
    for stream in streams:
        try:
            page = zlib.decompress(stream)
        except zlib.error:
            continue
        shown += [m.decode("latin-1") for m in re.findall(rb"\(((?:[^()\\]|\\.)*)\) ?Tj", page)]
    return "\n".join(shown)


def test_the_season_report_downloads_as_a_pdf_with_the_pages_figures(served):
    web, _, store = served
    fill(store)
    page = httpx.get(web.url + "/report" + SEASON).text
    assert "/report.pdf?" in page and "Hent som PDF" in page
    reply = httpx.get(web.url + "/report.pdf" + SEASON)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/pdf"
    assert reply.content.startswith(b"%PDF") and "attachment" in reply.headers["content-disposition"]
    text = pdf_text(reply.content)
    figures = kpis(page)
    assert figures["Bookede timer"] == "4,5" and "4,5" in text and "Bookede timer" in text
    assert "Sæsonrapport for alle steder" in text and "uge 48, 2026" in text and "Valby Volley" in text
    assert "Stederne" in text and "Vanløse" in text

    one = pdf_text(httpx.get(web.url + "/report.pdf" + SEASON + "&association=a17").content)
    assert "Sæsonrapport for Valby Volley" in one and "23. nov. 2026" in one and "17.00-18.30" in one
    english = pdf_text(httpx.get(web.url + "/report.pdf" + SEASON + "&lang=en").content)
    assert "Season report for every site" in english and "4.5" in english and "week 48, 2026" in english


def test_a_long_name_is_cut_to_its_cell_and_a_long_table_runs_over_sheets_with_its_head():
    from haldor.fleet.report_pdf import season_pdf

    long_name = "Foreningen for " + "meget " * 40 + "lange navne"
    rows = [[long_name if i == 0 else f"Hal {i}", str(i), "1,5"] for i in range(200)]
    body = season_pdf(
        "Sæsonrapport", ["Periode: 10. aug. 2026 – 27. jun. 2027."], [("Stederne", ["Sted", "Bookinger", "Booket"], rows)]
    )
    text = pdf_text(body)
    assert long_name not in text and "Foreningen for meget" in text and "..." in text
    assert "Hal 199" in text and text.count("Bookinger") > 1 and body.count(b"/Type /Page\n") > 1
    assert "Periode: 10. aug. 2026 - 27. jun. 2027." in text  # the dash Latin-1 lacks, as a hyphen
