/* The board functions for a host build of the test program (firmware/mcu/main.c): stdout, exit,
 * no timer. The kernels then run their portable C paths. */
#include <stdio.h>
#include <stdlib.h>

#include "board.h"

void esr_print(const char *s) { fputs(s, stdout); }

void esr_exit(int code) { exit(code); }

void esr_ticks_start(void) {}

uint64_t esr_ticks(void) { return 0; }

void esr_spin(uint32_t n) { (void)n; }
