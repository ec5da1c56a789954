/*
 * chart.c - a build's steps as an inline SVG timing chart: one row per
 * step, a bar from its start to its end on a shared time axis, so where
 * the time went is visible at a glance. Pure: (build, now) → markup.
 * Colours come from CSS classes (the page's CSP allows no inline style).
 */
#include <string.h>

#include "app.h"

#define CHART_W 720.0
#define CHART_LABEL 150.0 /* step names, right-aligned before this x */
#define CHART_X0 158.0
#define CHART_X1 650.0 /* then the duration text */
#define CHART_ROW 22.0
#define CHART_TOP 22.0 /* room for the axis labels */

/* A tick interval giving at most about six ticks over `total` seconds. */
static double
tick_step(double total)
{
	static const double steps[] = {1,    2,    5,     10,    15,   30,
	                               60,   120,  300,   600,   900,  1800,
	                               3600, 7200, 14400, 43200, 86400};
	size_t i;

	for (i = 0; i < NELEM(steps); i++)
		if (total / steps[i] <= 6)
			return steps[i];
	return steps[NELEM(steps) - 1];
}

static double
step_end(const struct step_view *s, double now)
{
	return s->finished >= 0 ? s->finished : now;
}

static void
axis(struct buf *b, double total, double height)
{
	double step = tick_step(total), t, x;
	char d[32];

	for (t = 0; t <= total + 1e-9; t += step) {
		x = CHART_X0 + (CHART_X1 - CHART_X0) * (t / total);
		duration_format(t, d);
		buf_printf(b,
		           "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" "
		           "x2=\"%.1f\" y2=\"%.1f\"/>"
		           "<text class=\"tick\" x=\"%.1f\" y=\"14\" "
		           "text-anchor=\"middle\">%s</text>",
		           x, CHART_TOP - 4, x, height, x, d);
	}
}

void
chart_svg(struct buf *b, const struct build_view *v, double now)
{
	double t0 = v->started, t1 = v->finished >= 0 ? v->finished : now;
	double total, height, x, w, y;
	char d[32];
	size_t i;

	if (v->nsteps == 0) {
		buf_puts(b, "<p class=\"muted\">No steps recorded.</p>\n");
		return;
	}
	for (i = 0; i < v->nsteps; i++) {
		if (v->steps[i].started < t0)
			t0 = v->steps[i].started;
		if (step_end(&v->steps[i], now) > t1)
			t1 = step_end(&v->steps[i], now);
	}
	total = t1 - t0 > 1 ? t1 - t0 : 1;
	height = CHART_TOP + CHART_ROW * (double)v->nsteps + 4;
	buf_printf(b,
	           "<svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" "
	           "width=\"%.0f\" height=\"%.0f\" role=\"img\" "
	           "aria-label=\"Step timings of build ",
	           CHART_W, height, CHART_W, height);
	html_text(b, v->id);
	buf_puts(b, "\">");
	axis(b, total, height);
	for (i = 0; i < v->nsteps; i++) {
		const struct step_view *s = &v->steps[i];
		double end = step_end(s, now);

		y = CHART_TOP + CHART_ROW * (double)i;
		x = CHART_X0 +
		    (CHART_X1 - CHART_X0) * ((s->started - t0) / total);
		w = (CHART_X1 - CHART_X0) * ((end - s->started) / total);
		if (w < 2)
			w = 2; /* an instant step stays visible */
		duration_format(end - s->started, d);
		buf_printf(b,
		           "<g class=\"step s-%s\"><text class=\"label\" "
		           "x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
		           html_state_class(s->status), CHART_LABEL, y + 15);
		html_text(b, s->name);
		buf_printf(b,
		           "</text><rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" "
		           "width=\"%.1f\" height=\"16\" rx=\"3\"><title>",
		           x, y + 3, w);
		html_text(b, s->name);
		buf_printf(b, ": %s, ", d);
		html_text(b, s->status);
		if (s->detail) {
			buf_puts(b, " \xe2\x80\x94 ");
			html_text(b, s->detail);
		}
		buf_printf(b,
		           "</title></rect><text class=\"dur\" x=\"%.1f\" "
		           "y=\"%.1f\">%s</text></g>",
		           x + w + 6 > CHART_X1 + 6 ? CHART_X1 + 6 : x + w + 6,
		           y + 15, d);
	}
	buf_puts(b, "</svg>\n");
}
