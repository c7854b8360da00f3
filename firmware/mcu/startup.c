/* Cortex-M4F start-up for QEMU's mps2-an386: vector table, .data/.bss set-up, FPU on, a
 * timer (instruction counts under -icount), semihosting output and exit. */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

void Reset_Handler(void);
static void Default_Handler(void) {
    esr_print("fault\n");
    esr_exit(3);
}

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler,
};

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst;
    for (dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: full access to CP10/CP11 (FPU) */
    __asm volatile("dsb\n isb");
    esr_exit(main());
}

static int semihost(int op, const void *arg) {
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void esr_print(const char *s) { semihost(0x04, s); }

void esr_exit(int code) {
    uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit, status */
    semihost(0x20, block);                          /* SYS_EXIT_EXTENDED */
    semihost(0x18, (const void *)0x20026u);         /* SYS_EXIT, in case */
    for (;;) {
    }
}

/* CMSDK APB timer 0 (0x40000000), a 32-bit down-counter on the 25 MHz peripheral clock. */
#define TIMER0 ((volatile uint32_t *)0x40000000u)

void esr_ticks_start(void) {
    TIMER0[0] = 0;           /* CTRL: stop */
    TIMER0[2] = 0xFFFFFFFFu; /* RELOAD */
    TIMER0[1] = 0xFFFFFFFFu; /* VALUE */
    TIMER0[0] = 1;           /* enable */
}

uint64_t esr_ticks(void) { return 0xFFFFFFFFu - TIMER0[1]; }

void esr_spin(uint32_t n) {
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc"); /* 2 instructions per turn */
}
