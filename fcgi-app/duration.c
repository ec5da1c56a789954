/*
 * duration.c - durations and money as people read them on the status
 * page. Two units at most: "2h 14m" says enough at a glance.
 */
#include <stdio.h>

#include "app.h"

void
duration_format(double seconds, char out[static 32])
{
	long long s;

	if (!(seconds > 0)) /* also NaN */
		seconds = 0;
	if (seconds > 1e9)
		seconds = 1e9;
	s = (long long)seconds; /* truncates: floor for positives */
	if (s < 60)
		snprintf(out, 32, "%llds", s);
	else if (s < 3600)
		snprintf(out, 32, "%lldm %02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, 32, "%lldh %02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, 32, "%lldd %02lldh", s / 86400, s % 86400 / 3600);
}

void
money_format(double amount, char out[static 32])
{
	if (!(amount > 0))
		amount = 0;
	if (amount > 1e12)
		amount = 1e12;
	if (amount > 0 && amount < 0.01)
		snprintf(out, 32, "$%.4f", amount);
	else
		snprintf(out, 32, "$%.2f", amount);
}
