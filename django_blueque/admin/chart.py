"""The queues page's chart: tasks finished and failed per minute over the last hour, as SVG.

Drawn on the server, with no script and no style attribute (colours are SVG
presentation attributes, which a Content-Security-Policy leaves alone), so it
shows with scripts off and under a strict policy.
"""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 180, 36
BAR = WIDTH / 60
COMPLETE_COLOUR, FAILED_COLOUR = "#417690", "#ba2121"  # the admin's own blue and red


def per_minute_svg(complete: list[int], failed: list[int]) -> SafeString:
    """Stacked bars, oldest minute on the left: completed below, failed on top."""
    peak = max((c + f for c, f in zip(complete, failed, strict=True)), default=0)
    scale = (HEIGHT - 2) / peak if peak else 0.0
    bars = []
    for minute, (done, lost) in enumerate(zip(complete, failed, strict=True)):
        if not done and not lost:
            continue
        x = f"{minute * BAR:.1f}"
        done_height, lost_height = done * scale, lost * scale
        ago = 59 - minute
        label = (
            f"{ago} min ago: {done} complete, {lost} failed" if ago else f"this minute: {done} complete, {lost} failed"
        )
        bars.append(
            (
                x,
                f"{HEIGHT - done_height:.1f}",
                f"{done_height:.1f}",
                COMPLETE_COLOUR,
                x,
                f"{HEIGHT - done_height - lost_height:.1f}",
                f"{lost_height:.1f}",
                FAILED_COLOUR,
                label,
            )
        )
    rects = format_html_join(
        "",
        '<g><title>{8}</title><rect x="{0}" y="{1}" width="{9}" height="{2}" fill="{3}"/>'
        '<rect x="{4}" y="{5}" width="{9}" height="{6}" fill="{7}"/></g>',
        ((*bar, f"{BAR - 0.5:.1f}") for bar in bars),
    )
    total_done, total_lost = sum(complete), sum(failed)
    return format_html(
        '<svg class="blueque-chart" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" '
        'role="img" aria-label="{}"><title>{}</title>'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#ccc" stroke-width="1"/>{}</svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        f"Last hour: {total_done} complete, {total_lost} failed",
        f"Last hour: {total_done} complete, {total_lost} failed (peak {peak} a minute)",
        HEIGHT - 0.5,
        WIDTH,
        HEIGHT - 0.5,
        rects,
    )
