/* SPDX-License-Identifier: GPL-2.0-or-later */
/* check.h - "moat check": decide one request offline and print the rule */
#pragma once

int moat_check_main (int argc, char **argv);
