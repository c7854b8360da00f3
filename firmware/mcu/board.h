/* The bits of the board the test program uses (startup.c). */
#ifndef ESR_BOARD_H
#define ESR_BOARD_H

#include <stdint.h>

void esr_print(const char *s);
void esr_exit(int code);
void esr_ticks_start(void);
uint64_t esr_ticks(void); /* timer ticks since esr_ticks_start (25 MHz; under -icount, per instruction count) */
void esr_spin(uint32_t n);  /* exactly 2n instructions (calibrates ticks per instruction) */

#endif
