/* libFuzzer harness for the fast engine's decoder (flowkit/decode/_decode.c): link layers,
 * IP, transports, tunnels and fragment reassembly, on attacker-controlled bytes.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined by fuzz/run_fuzzer.sh; the decoder's
 * static functions are compiled in by including its source. One input is a short capture:
 *   byte 0: bit 0 follow tunnels, bit 1 reassemble fragments
 *   then records: link selector (1 byte), captured length (2 bytes, little-endian), bytes
 * Records are 100 s apart, so the 5-minute fragment timeout and the (small) memory bound
 * are exercised; the wire length is the captured length plus the selector's high bit.
 */
#include "../flowkit/decode/_decode.c"

#define MAX_RECORDS 32
#define CAP (MAX_RECORDS * ROWS_PER_RECORD)

static const int LINKS[] = {LT_ETHERNET, LT_NULL, LT_PPP, LT_FDDI, LT_RAW_12, LT_RAW_14, LT_PPP_HDLC, LT_RAW,
                            LT_C_HDLC, LT_IEEE802_11, LT_LOOP, LT_SLL, LT_RADIOTAP, LT_IPV4, LT_IPV6, LT_NFLOG,
                            LT_SLL2, 230};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static void *store[N_COLUMNS];
    static int64_t pstart[CAP];
    static uint32_t pcap[CAP];
    cols_t c = {.payload_start = pstart, .payload_caplen = pcap};
    memset(pstart, 0, sizeof pstart);
    memset(pcap, 0, sizeof pcap);
    for (int j = 0; j < N_COLUMNS; j++) {
        size_t item = COLUMNS[j].fmt[0] == 'B' ? 1 : COLUMNS[j].fmt[0] == 'H' ? 2 : 4;
        size_t bytes = (size_t)CAP * COLUMNS[j].width * item;
        if (!store[j])
            store[j] = malloc(bytes);
        memset(store[j], 0, bytes);
        memcpy((char *)&c + COLUMNS[j].offset, &store[j], sizeof(void *));
    }
    state_t *st = calloc(1, sizeof *st);
    st->decap = data[0] & 1;
    st->reassemble = (data[0] >> 1) & 1;
    st->timeout_ns = 300LL * 1000000000LL;
    st->max_bytes = 64 << 10;
    size_t pos = 1;
    int64_t row = 0;
    for (int r = 0; r < MAX_RECORDS && pos + 3 <= size; r++) {
        int sel = data[pos];
        size_t len = (size_t)data[pos + 1] | ((size_t)data[pos + 2] << 8);
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        /* a private copy: reads past the record's end land outside the allocation */
        uint8_t *pkt = malloc(len ? len : 1);
        memcpy(pkt, data + pos, len);
        pos += len;
        int64_t ts = (int64_t)r * 100 * 1000000000LL;
        if (st->oldest)
            frag_expire(st, ts);
        int64_t wire = (int64_t)len + ((sel & 0x80) ? 64 : 0);
        c.record = pkt;
        int rows = decode_record(&c, st, pkt, row, 0, (int64_t)len, wire,
                                 LINKS[(sel & 0x7F) % (int)(sizeof LINKS / sizeof LINKS[0])], ts);
        for (int d = 0; d < st->n_done; d++) {
            free(st->done[d]->buf);
            free(st->done[d]);
        }
        st->n_done = 0;
        if (rows < 1 || rows > ROWS_PER_RECORD)
            __builtin_trap();
        for (int64_t j = row; j < row + rows; j++) /* a recorded payload lies inside its record */
            if (pcap[j] && (pstart[j] < 0 || pstart[j] + (int64_t)pcap[j] > (int64_t)len))
                __builtin_trap();
        row += rows;
        free(pkt);
    }
    frags_clear(st);
    if (st->pending != 0 || st->bytes != 0) /* the accounting returns to zero */
        __builtin_trap();
    free(st);
    return 0;
}
