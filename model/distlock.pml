/*
 * distlock.pml: a Promela model of distlock's protocol (Redlock over N
 * independent masters, fencing tokens, renewal, Extend, Release, the local
 * handoff, a waiting list on every master and master 0's tie-break), as
 * it is being fixed: a fresh value per attempt, Extend capping every
 * longer-TTL ack, a local handoff that is one round trip (handoff.lua) and
 * gives the key the next holder's fresh value, decided at the fastest
 * majority, Release reporting lost and returning at a majority.
 *
 * model/README.md says what is modelled and what abstracted, and maps each
 * step below to the Go function and Lua script it stands for. check.sh
 * runs every scenario, then every mutation (each must be caught).
 *
 * Time is a tick counter `now` that the environment advances. A key set
 * or PEXPIREd at tick e with ttl lives while now < e+ttl; a client counts
 * validity from the tick it sent the command: start+ttl-DRIFT.
 */

/* ---------------- configuration (check.sh sets these) ---------------- */
#ifndef N
#define N 3            /* masters */
#endif
#define Q (N/2+1)      /* majority */
#ifndef G
#define G 2            /* goroutines (clients); see CLIENT_OF */
#endif
#ifndef TTL
#define TTL 3          /* lease TTL, ticks */
#endif
#ifndef SHORT
#define SHORT 2        /* the shorter TTL an Extend asks for */
#endif
#ifndef LONG
#define LONG 4         /* the longer TTL an Extend asks for */
#endif
#define DRIFT 1
#ifndef MAXT
#define MAXT 6         /* the clock stops here: the bound on time */
#endif
#ifndef LIMBO
#define LIMBO 1        /* commands left on a replaced connection (late delivery) */
#endif
#ifndef CLOCKF
#define CLOCKF 0       /* keys deleted early by a clock fault */
#endif
#ifndef PAUSES
#define PAUSES 0       /* goroutines paused between check and write */
#endif
#ifndef ATT
#define ATT 2          /* attempts per Acquire before it gives up */
#endif
#ifndef WRITES
#define WRITES 0       /* checked writes per lease (the pause scenario) */
#endif
#ifndef LOOPS
#define LOOPS 1        /* Acquire-Release cycles of goroutine 0 */
#endif
#ifndef ATT1
#define ATT1 ATT       /* attempts of goroutine 1's Acquire */
#endif
#ifndef RENEWS
#define RENEWS 0       /* background renewal rounds per lease */
#endif
/* RENEW_HANDED: a lease handed over renews too (goroutine 0's always do).
 * MUT_SUCCESSOR_OLD_TTL: it sends the Client's TTL in its renewals while
 * its validity counts the lease's (the copy the code kept before it
 * derived the argument from the TTL: TestHandoffAfterExtendRenewsWithLeaseTTL) */
#ifdef RENEW_HANDED
#define RENEWER(g_) handed[g_]
#else
#define RENEWER(g_) false
#endif
#ifdef MUT_SUCCESSOR_OLD_TTL
#define SENTTTL(g_) (handed[g_] -> TTL : ttl[g_])
#else
#define SENTTTL(g_) ttl[g_]
#endif
#ifndef BLOCK
#define BLOCK 2        /* MUT_HANDOFF_NO_ROUNDTRIP: counters per draw */
#endif
#define QCAP 4         /* commands in flight per connection (-DCHKQ: assert never full) */

#define TOKMAX 96
#define VMAX 16        /* values drawn (nextv), bound for lctr */
#ifndef CTR0
#define CTR0 0         /* master 0's counter at the start: earlier history (failed attempts) */
#endif

/* Scenario HANDOFF: goroutines 0 and 1 share a Client (its local queue),
 * goroutine 2 is another Client. Otherwise each goroutine is its own. */
#ifdef HANDOFF
#define CLIENT_OF(x) ((x) < 2 -> 0 : 1)
#else
#define CLIENT_OF(x) (x)
#endif

mtype = { ACQ, DEL, FEN, REN, HND, DRW, LEAVE };

/* ---------------- masters ---------------- */
byte kval[N];     /* the lock key's value, 0: absent */
byte kexp[N];     /* tick at which it expires */
byte ctr[N];      /* fence counter */
byte lctr[VMAX];  /* the counter in the token of the lease that had value v (0: never a lease's):
                   * what release.lua (ARGV[3]) and acquire.lua (ARGV[8], for its
                   * replaces) are given */
/* Every master keeps a waiting list. wl[m*G+w-1] is waiter w's place in
 * master m's line (0: not in it); the smallest place is first. A waiter's
 * place is its arrival: the first time any master registered it during its
 * Acquire (wrk), and every master ranks it by that place (acquire.lua
 * ARGV[3], the arrival time carried from master to master). */
byte wl[N*G];
byte wrk[G];      /* goroutine g's Acquire's place (0: no master registered it yet) */
byte nrk;         /* arrivals so far */
byte now;

/* Commands from a goroutine to a master go in order on one connection
 * (a FIFO per goroutine and master). A master runs the next command of
 * any connection atomically, and its answer lands in the goroutine's
 * answer slots below at once (the goroutine reads them at its next step).
 * A connection replacement leaves a command in the old socket (limbo):
 * the goroutine gets an error at once, the master may still run the
 * command at any later point, after commands sent later. */
chan q[G*N] = [QCAP] of { mtype, byte, byte, byte, byte };      /* kind, value, a1, a2, a3 */
mtype lkind[LIMBO+1]; byte lm[LIMBO+1]; byte lv[LIMBO+1]; byte la1[LIMBO+1]; byte la2[LIMBO+1]; byte la3[LIMBO+1];
byte nlimbo, nclock, npause;
bool faulted;     /* a clock fault or a pause happened: P1 and P3 assume none */

/* ---------------- each goroutine's view, index g (or g*N+m) ---------------- */
byte gv[G];       /* the value its answers are for */
byte gdv[G];      /* the value its deletes are for */
byte gt[G];       /* the counter its write-back is for */
byte gph[G];      /* its phase */
byte ast[G*N];    /* the acquire's (or handoff's) answers: 0 pending, 1 no, 2 yes, 3 unknown */
byte cn[G*N];     /* the counters they returned, of the answers in by the decision
                   * (fence's counters: a straggler's is not recorded) */
byte ost[G*N];    /* another operation's answers */
bool behind[G];   /* a master said the handoff should go to another Client's waiter */
bool straggle[G]; /* its lease's acquire still has answers to come */
bool hph[G];      /* ast holds a handoff's answers: the lease's acquire's stragglers no longer count there */
/* renewal state (lease_renewal.go): acks, renewals in flight */
byte ack[G*N]; byte unk[G*N]; bool rinfl[G*N]; byte rst[G*N]; byte rttl[G*N]; bool gone[G*N]; bool xsent[G*N];
byte ttl[G];      /* the TTL renewals use; Extend changes it */
byte extcap[G];   /* Extend's cap on acks of a longer TTL */

/* ---------------- what the properties watch ---------------- */
bool hold[G];     /* the goroutine has a lease it has not released or seen lost */
byte lval[G];     /* its value */
byte vu[G];       /* its validity: valid while now < vu */
hidden byte tok[G];   /* its token: counter*N + master (write-only: not in the state) */
bool incs[G];     /* between its check (Err()==nil) and its write */
bool paused[G];
byte retmax;      /* largest token of a lease handed out so far */
bit given[TOKMAX];
byte nextv;       /* values drawn so far (each is fresh) */
hidden byte relost[G];   /* Release reported the lease lost (1) or released (2) (write-only) */

/* local queue (HANDOFF): the goroutine+1 holding a Client's turn */
byte turn[2];
bool lwait[G];    /* waiting for its Client's turn */
byte floor[G];    /* retmax when its Acquire began (P2) */
bool handed[G];   /* a lease was handed over to it */
byte httl[G];     /* the TTL of the lease handed over to it (Extend's included) */
byte trepl[G];    /* the released value its first attempt may replace */

#define believes(x) (hold[x] && (now < vu[x] || incs[x]))
#define valid(x)    (hold[x] && now < vu[x])
#define keys(x)     ((kval[0] == lval[x]) + (kval[1] == lval[x]) + (N > 2 && kval[N-1] == lval[x]))

#if G == 2
#define P1 (!believes(0) || !believes(1))
#define P3 ((!valid(0) || keys(0) >= Q) && (!valid(1) || keys(1) >= Q))
#else
#define P1 ((!believes(0) || !believes(1)) && (!believes(0) || !believes(2)) && (!believes(1) || !believes(2)))
#define P3 ((!valid(0) || keys(0) >= Q) && (!valid(1) || keys(1) >= Q) && (!valid(2) || keys(2) >= Q))
#endif

/* P1 mutual exclusion, P3 no valid lease without its keys on a majority:
 * both under the assumptions (no clock fault, no pause, no counter loss). */
active proctype monitor()
{
	bool P1_mutual_exclusion, P3_keys_on_majority;
end:
	do
	:: atomic { !faulted && !(P1) -> assert(P1_mutual_exclusion) }
	:: atomic { !faulted && !(P3) -> assert(P3_keys_on_majority) }
	od
}

/* count of val_ among goroutine x_'s slots arr_ */
#define count(arr_, x_, val_) ((arr_[(x_)*N] == val_) + (arr_[(x_)*N+1] == val_) + (N > 2 && arr_[(x_)*N+N-1] == val_))

/* Q-th largest of goroutine x_'s acks: a majority keep the key that long */
inline quorumack(x_, res_) {
	res_ = 0;
	for (ei : 0 .. N-1) {
		ej = (ack[x_*N] >= ack[x_*N+ei]) + (ack[x_*N+1] >= ack[x_*N+ei]) + (N > 2 && ack[x_*N+N-1] >= ack[x_*N+ei]);
		if
		:: ej >= Q && ack[x_*N+ei] > res_ -> res_ = ack[x_*N+ei]
		:: else -> skip
		fi
	}
	ei = 0; ej = 0
}

#define PH_NONE 0
#define PH_ACQ  1
#define PH_FEN  2
#define PH_DEL  3
#define PH_HND  4
#define PH_EXT  5

/* ---------------- the masters' scripts, each atomic ---------------- */
byte eg, em, ev, ea1, ea2, ea3, eres, enm, ei, ej, eh; mtype ek;

/* the first in master m_'s line, into eh (0: nobody) */
inline headof(m_) {
	eh = 0;
	for (ei : 0 .. G-1) {
		if
		:: wl[m_*G+ei] != 0 && (eh == 0 || wl[m_*G+ei] < wl[m_*G+eh-1]) -> eh = ei + 1
		:: else -> skip
		fi
	}
	ei = 0
}

/* acquire.lua: join master m_'s line at the waiter's place, or move up to it */
inline join(m_, w_) {
	if
	:: wrk[w_-1] == 0 -> nrk++; wrk[w_-1] = nrk   /* its arrival: the first registration anywhere */
	:: else -> skip
	fi;
	if
	:: wl[m_*G+w_-1] == 0 || wl[m_*G+w_-1] > wrk[w_-1] -> wl[m_*G+w_-1] = wrk[w_-1]
	:: else -> skip
	fi
}

/* leave.lua */
#define leave(m_, w_) wl[(m_)*G+(w_)-1] = 0

/* is the first in master em's line (eh, after headof) a waiter of another
 * Client than the caller's (a2-1)? */
#define otherhead (eh != 0 && CLIENT_OF(eh-1) != ea2-1)

/* A LEAVE alone in its connection changes only its master's line, which
 * only an ACQ, HND or DRW there reads. So the env does not run it as a
 * step of its own (DLV); each read of the line first chooses whether it
 * has run by then (the reader's own connection aside: its LEAVEs come
 * after). That reaches the same states as running it at any moment, with
 * fewer interleavings. */
inline pendleaves() {
	for (ej : 0 .. G-1) {
		if
		:: ej != eg && q[ej*N+em]?[LEAVE,_,_,_,_] ->
			if
			:: q[ej*N+em]?LEAVE,_,_,eh,_; leave(em, eh);
				printf("MSC: t=%d master %d runs %e(w%d)\n", now, em, LEAVE, eh); eh = 0
			:: skip
			fi
		:: else -> skip
		fi
	}
	ej = 0
}

inline exec() {
	eres = 1; enm = 0;
	if
	:: ek == ACQ ->
		/* acquire.lua on every master. ev value, ea1 replaces (0: none),
		 * ea2 waiter id (0: TryAcquire), ea3 1: join the line if refused */
		pendleaves();
		headof(em);
		if
		:: (kval[em] == 0 || (ea1 != 0 && kval[em] == ea1)) && (eh == 0 || eh == ea2) ->
#ifndef MUT_RELEASE_NO_RAISE
			/* taking over the replaced lease's key: draw above its counter */
			if
			:: ea1 != 0 && kval[em] == ea1 && ctr[em] < lctr[ea1] -> ctr[em] = lctr[ea1]
			:: else -> skip
			fi;
#endif
			kval[em] = ev; kexp[em] = now + TTL; ctr[em]++; eres = 2; enm = ctr[em]
		:: else ->
			if
			:: kval[em] == ev ->      /* re-assert the same value */
				kexp[em] = now + TTL; ctr[em]++; eres = 2; enm = ctr[em]
			:: else ->
				if
				:: ea2 != 0 && ea3 != 0 -> join(em, ea2)
				:: else -> skip
				fi
			fi
		fi
	:: ek == DEL ->   /* release.lua; a3: another value of the lease's (a failed handoff's next) */
#ifndef MUT_RELEASE_NO_RAISE
		/* raise the counter to the lease's, whatever the key holds */
		if
		:: ctr[em] < lctr[ev] -> ctr[em] = lctr[ev]
		:: else -> skip
		fi;
#endif
		if
		:: kval[em] == ev || (ea3 != 0 && kval[em] == ea3) -> kval[em] = 0; kexp[em] = 0; eres = 2
		:: else -> skip
		fi
	:: ek == FEN ->   /* fence.lua: counter = max(counter, t) */
		if
		:: ctr[em] < ea1 -> ctr[em] = ea1
		:: else -> skip
		fi;
		eres = 2; enm = ctr[em]
	:: ek == REN ->   /* renew.lua, ea1 the TTL */
		if
		:: kval[em] == ev -> kexp[em] = now + ea1; eres = 2
		:: else -> skip
		fi
	:: ek == HND ->   /* handoff.lua: ea1 TTL, ea2 the Client+1, ea3 the next holder's value */
		pendleaves();
		headof(em);
		if
		/* behind: another Client's waiter first in this master's line, or
		 * on master 0 another value holds the key (a kept tie-break) */
		:: (em == 0 && kval[0] != 0 && kval[0] != ev) || otherhead -> enm = 1
		:: else ->
			if
			/* DEL old, SET next PX ttl, INCR (MUT_HANDOFF_SAME_VALUE: ea3 == ev) */
			:: kval[em] == ev -> kval[em] = ea3; kexp[em] = now + ea1; ctr[em]++; eres = 2; enm = ctr[em]
			:: else -> skip
			fi
		fi
	:: ek == DRW ->   /* draw.lua (old, MUT_HANDOFF_NO_ROUNDTRIP): INCRBY BLOCK; behind as handoff.lua */
		pendleaves();
		headof(em);
		if
		:: (em == 0 && kval[0] != 0 && kval[0] != ev) || otherhead -> enm = 1
		:: else ->
			if
			:: kval[em] == ev -> ctr[em] = ctr[em] + BLOCK; eres = 2; enm = ctr[em]
			:: else -> skip
			fi
		fi
	:: ek == LEAVE -> leave(em, ea2); eres = 2   /* leave.lua */
	fi;
	if
	:: ek == LEAVE -> printf("MSC: t=%d master %d runs %e(w%d)\n", now, em, ek, ea2)
	:: else ->
		printf("MSC: t=%d master %d runs %e(v%d,%d,%d,%d) -> res %d num %d; key v%d exp %d ctr %d; line: w1@%d w2@%d w3@%d\n", now, em, ek, ev, ea1, ea2, ea3, eres, enm, kval[em], kexp[em], ctr[em], wl[em*G], wl[em*G+1], (G > 2 -> wl[em*G+G-1] : 0))
	fi
}

/* lease_renewal.go Lease.answered: master m_ answered goroutine x_'s renewal (sent
 * at rst with rttl); res_ 2 renewed, 1 gone or taken, 3 unknown */
byte ra;
inline renewanswer(x_, m_, res_) {
	rinfl[x_*N+m_] = false;
	if
	:: res_ == 2 ->
		ra = rst[x_*N+m_] + rttl[x_*N+m_] - DRIFT;
#ifndef MUT_NO_UNKNOWN_TTL
		/* lease_renewal.go answered: a renewal of ours to this master whose
		 * answer never came may still run later and set its TTL then:
		 * no ack there counts beyond the shortest such TTL */
		if
		:: unk[x_*N+m_] != 0 && unk[x_*N+m_] < rttl[x_*N+m_] -> ra = rst[x_*N+m_] + unk[x_*N+m_] - DRIFT
		:: else -> skip
		fi;
#endif
#ifndef MUT_OLD_EXTEND
		/* Extend to a shorter TTL caps every ack computed under a
		 * longer one, answers still in flight included */
		if
		:: rttl[x_*N+m_] > ttl[x_] && ra > extcap[x_] -> ra = extcap[x_]
		:: else -> skip
		fi;
#endif
		ack[x_*N+m_] = ra;
		printf("MSC: t=%d g%d: renewal answer from master %d (ttl %d sent t=%d): ack %d\n", now, x_, m_, rttl[x_*N+m_], rst[x_*N+m_], ra);
		if
		:: gph[x_] == PH_EXT && rttl[x_*N+m_] == ttl[x_] -> ost[x_*N+m_] = 2
		:: else -> skip
		fi;
		quorumack(x_, ra);
		if
		:: hold[x_] && now < vu[x_] && ra > vu[x_] -> vu[x_] = ra;   /* later only */
			printf("MSC: t=%d g%d: valid until %d\n", now, x_, ra)
		:: else -> skip
		fi
	:: res_ == 1 ->
		ack[x_*N+m_] = 0; gone[x_*N+m_] = true;
		if
		:: count(gone, x_, 1) > N - Q -> hold[x_] = false   /* lost: a majority say gone or taken */
		:: else -> skip
		fi
	:: else ->   /* unknown: Extend sends again */
		if
		:: unk[x_*N+m_] == 0 || rttl[x_*N+m_] < unk[x_*N+m_] -> unk[x_*N+m_] = rttl[x_*N+m_]
		:: else -> skip
		fi;
		if
		:: gph[x_] == PH_EXT -> ost[x_*N+m_] = 0; xsent[x_*N+m_] = false
		:: else -> skip
		fi
	fi;
	ra = 0
}

/* goroutine x_ leaves every line (Client.leave: leave.lua on every
 * master), i_ a loop variable. Never left in a replaced connection (a lost
 * LEAVE costs liveness only). Not sent where the waiter is in no line and
 * no acquire of it that joins is on its way (queued, or in an old socket):
 * there it would change nothing, whenever it ran. */
#define joining(x_, m_) (wl[(m_)*G+x_] != 0 || q[(x_)*N+(m_)]??[ACQ,_,_,_,1] || \
	(LIMBO > 0 && lkind[0] == ACQ && lm[0] == (m_) && la2[0] == (x_)+1 && la3[0] != 0) || \
	(LIMBO > 1 && lkind[1] == ACQ && lm[1] == (m_) && la2[1] == (x_)+1 && la3[1] != 0))
inline leaveof(x_, i_) {
	for (i_ : 0 .. N-1) {
		if
		:: joining(x_, i_) -> q[(x_)*N+i_]!LEAVE,0,0,(x_)+1,0
		:: else -> skip
		fi
	}
	i_ = 0
}

/* the answer to goroutine x_'s command k_ (value v_, a1_) from master m_ */
inline answer(x_, m_, k_, v_, a1_, res_, num_) {
	if
	:: ((k_ == ACQ && !hph[x_]) || k_ == HND || k_ == DRW) && v_ == gv[x_] && ast[x_*N+m_] == 0 ->
		ast[x_*N+m_] = res_;
		if
		:: gph[x_] == PH_ACQ || gph[x_] == PH_HND ->   /* still deciding */
			cn[x_*N+m_] = num_;
			if
			:: k_ != ACQ && res_ == 1 && num_ == 1 -> behind[x_] = true   /* any master */
			:: else -> skip
			fi
		:: else -> skip
		fi;
		if
		:: k_ == ACQ && straggle[x_] ->
			/* a straggler that refused a lease's acquire (and put it in
			 * its line): another LEAVE, after its answer (Lease.answers) */
			if
			:: res_ == 1 -> leaveof(x_, ej)
			:: else -> skip
			fi;
			straggle[x_] = (count(ast, x_, 0) > 0)
		:: else -> skip
		fi
	:: k_ == FEN && gph[x_] == PH_FEN && a1_ == gt[x_] && ost[x_*N+m_] == 0 ->
		ost[x_*N+m_] = (res_ == 2 && num_ >= a1_ -> 2 : 3)
	:: k_ == DEL && gph[x_] == PH_DEL && v_ == gdv[x_] && ost[x_*N+m_] == 0 ->
		ost[x_*N+m_] = res_
	:: k_ == REN && v_ == gv[x_] && rinfl[x_*N+m_] ->
		renewanswer(x_, m_, res_)
	:: else -> skip   /* a straggler nobody waits for */
	fi
}

#define ERESET eg = 0; em = 0; ev = 0; ea1 = 0; ea2 = 0; ea3 = 0; eres = 0; enm = 0; ei = 0; ej = 0; eh = 0; ek = 0

/* run the next command on goroutine g_'s connection to master m_ (a LEAVE
 * alone there waits for a read of the line: pendleaves) */
#define DLV(g_, m_) \
	:: atomic { nempty(q[g_*N+m_]) && (len(q[g_*N+m_]) > 1 || !(q[g_*N+m_]?[LEAVE,_,_,_,_])) -> \
		q[g_*N+m_]?ek,ev,ea1,ea2,ea3; eg = g_; em = m_; exec(); \
		answer(g_, m_, ek, ev, ea1, eres, enm); ERESET }

/* run a command left in an old socket; its answer is lost */
#define LDLV(i_) \
	:: atomic { lkind[i_] != 0 -> ek = lkind[i_]; eg = G; em = lm[i_]; ev = lv[i_]; ea1 = la1[i_]; ea2 = la2[i_]; ea3 = la3[i_]; \
		exec(); lkind[i_] = 0; lm[i_] = 0; lv[i_] = 0; la1[i_] = 0; la2[i_] = 0; la3[i_] = 0; ERESET }

#define CF(m_) :: atomic { nclock < CLOCKF && kval[m_] != 0 -> kval[m_] = 0; kexp[m_] = 0; nclock++; faulted = true; \
		printf("MSC: t=%d clock fault: master %d's key expires early\n", now, m_) }
#define PZ(x_) :: atomic { npause < PAUSES && incs[x_] && !paused[x_] -> paused[x_] = true; npause++; faulted = true }
#if G > 2
#define INCS ((incs[0] && !paused[0]) || (incs[1] && !paused[1]) || (incs[2] && !paused[2]))
#else
#define INCS ((incs[0] && !paused[0]) || (incs[1] && !paused[1]))
#endif

/* the environment: masters running commands, the clock, faults */
active proctype env()
{
	byte m;
end:
	do
	DLV(0, 0)
	DLV(0, 1)
#if N > 2
	DLV(0, 2)
#endif
	DLV(1, 0)
	DLV(1, 1)
#if N > 2
	DLV(1, 2)
#endif
#if G > 2
	DLV(2, 0)
	DLV(2, 1)
#if N > 2
	DLV(2, 2)
#endif
#endif
#if LIMBO > 0
	LDLV(0)
#endif
#if LIMBO > 1
	LDLV(1)
#endif
	/* a tick; never while a goroutine is between its check and its write,
	 * unless paused there */
	:: atomic { now < MAXT && !INCS ->
		now++;
		printf("MSC: tick: t=%d\n", now);
		for (m : 0 .. N-1) {
			if
			:: kval[m] != 0 && kexp[m] <= now -> kval[m] = 0; kexp[m] = 0
			:: else -> skip
			fi
		}
		m = 0 }
#if CLOCKF > 0
	/* a master's clock jumps: its key expires early */
	CF(0)
	CF(1)
#if N > 2
	CF(2)
#endif
#endif
#if PAUSES > 0
	/* a goroutine is paused between its check and its write */
	PZ(0)
	PZ(1)
#if G > 2
	PZ(2)
#endif
#endif
	od
}

/* ---------------- a goroutine ---------------- */

/* send one command to master m_, or (a connection replacement) leave it in
 * the old socket: the caller gets an error now, the master may run it later.
 * Its a3 is the sender's sa3 (0 but for a handoff and the release after it) */
inline send(m_, k_, v_, a1_, a2_) {
	if
	:: LIMBO > 0 && nlimbo < LIMBO && k_ != LEAVE ->
		lkind[nlimbo] = k_; lm[nlimbo] = m_; lv[nlimbo] = v_; la1[nlimbo] = a1_; la2[nlimbo] = a2_; la3[nlimbo] = sa3;
		nlimbo++;
		printf("MSC: t=%d g%d: %e(v%d,%d) to master %d left in a replaced connection (error now, runs later)\n", now, g, k_, v_, a1_, m_);
		answer(g, m_, k_, v_, a1_, 3, 0)
	:: 
#ifdef CHKQ
		assert(nfull(q[g*N+m_]));
#endif
		q[g*N+m_]!k_,v_,a1_,a2_,sa3
	fi
}

/* Release's and the handoff's command k_ to master m_. Where the lease's
 * acquire has not answered yet (bit m_ of pm), it goes after that answer
 * (release.go sendDeletes, handoff.go successor: settle): in the model on
 * the same connection, behind the acquire (FIFO), and never left in a
 * replaced connection (a command left there could run before the acquire,
 * which the settle excludes). There a LEAVE goes first, in case the
 * straggler refuses and puts the waiter in its line (Lease.answers; a
 * LEAVE where it granted changes nothing). */
inline sendafter(m_, k_, v_, a1_, a2_) {
	if
	:: pm & (1 << (m_)) ->
		if
		:: joining(g, m_) -> q[g*N+m_]!LEAVE,0,0,g+1,0
		:: else -> skip
		fi;
		q[g*N+m_]!k_,v_,a1_,a2_,sa3
	:: else -> send(m_, k_, v_, a1_, a2_)
	fi
}
/* pm: the masters whose answer is still to come */
inline pendmask() {
	pm = (ast[g*N] == 0) + 2 * (ast[g*N+1] == 0) + (N > 2 -> 4 * (ast[g*N+N-1] == 0) : 0)
}

/* wait until every answer of the acquire (or handoff, or draw) is in */
#define acqsettled (count(ast, g, 0) == 0)
#define delsettled (count(ost, g, 0) == 0)

/* fencing.go fence/writeBack over the grants in ast/cn: sets t, first,
 * and ok (a majority holds a counter >= t). start bounds the write-back. */
inline fence() {
	atomic {
	t = 0; first = 0;
	for (i : 0 .. N-1) {
		if
		:: ast[g*N+i] == 2 && cn[g*N+i] > t -> t = cn[g*N+i]; first = i
		:: else -> skip
		fi
	}
	nh = (ast[g*N] == 2 && cn[g*N] == t) + (ast[g*N+1] == 2 && cn[g*N+1] == t) + (N > 2 && ast[g*N+N-1] == 2 && cn[g*N+N-1] == t);
#ifdef MUT_FASTPATH_ONE_MASTER
	ok = (nh >= 1);
#else
	ok = (nh >= Q);
#endif
	if
	:: !ok ->
		/* write back max(counter, t) to the other masters */
		gph[g] = PH_FEN; gt[g] = t;
		for (i : 0 .. N-1) {
			if
			:: ast[g*N+i] == 2 && cn[g*N+i] == t -> ost[g*N+i] = 2
			:: else -> ost[g*N+i] = 0; send(i, FEN, 0, t, 0)
			fi
		}
	:: else -> skip
	fi;
	for (i : 0 .. N-1) { cn[g*N+i] = 0 }   /* used */
	i = 0; nh = 0
	}
	if
	:: !ok ->
		if
		:: atomic { count(ost, g, 2) >= Q -> ok = true }
		:: atomic { count(ost, g, 2) + count(ost, g, 0) < Q -> skip }
		:: atomic { now >= start + TTL - DRIFT -> skip }  /* validity bounds it */
		fi;
		atomic { gph[g] = PH_NONE; gt[g] = 0; for (i : 0 .. N-1) { ost[g*N+i] = 0 } i = 0 }
	:: else -> skip
	fi
}

/* cleanup.go Client.cleanup: wait for the attempt's stragglers, then delete its
 * value where granted or unknown, and the kept value of an earlier
 * attempt everywhere; wait for the answers (a waiting Acquire: sync) */
inline cleanup() {
	atomic { acqsettled ->
	gph[g] = PH_DEL; gdv[g] = v;
	for (i : 0 .. N-1) {
		if
		:: ast[g*N+i] == 2 || ast[g*N+i] == 3 -> ost[g*N+i] = 0; send(i, DEL, v, 0, 0)
		:: else -> ost[g*N+i] = 1
		fi
	}
	i = 0
	}
	atomic { delsettled ->
	if
	:: keptv != 0 && keptv != v ->
		gdv[g] = keptv;
		for (i : 0 .. N-1) { ost[g*N+i] = 0; send(i, DEL, keptv, 0, 0) }
		i = 0
	:: else -> skip
	fi }
	atomic { delsettled ->
	keptv = 0; gdv[g] = 0; gph[g] = PH_NONE;
	for (i : 0 .. N-1) { ost[g*N+i] = 0 }
	i = 0 }
}

/* goroutine g's lease (or Acquire) has ended: its answer slots, renewal
 * state and view are dead. Zeroed, so that states that differ only there
 * are one; late answers to it are ignored from now on, as the Go code
 * ignores them (a released lease renews no more). */
inline forget() {
	gv[g] = 0; lval[g] = 0; vu[g] = 0; ttl[g] = 0; extcap[g] = 0; behind[g] = false; hph[g] = false; straggle[g] = false;
	for (i : 0 .. N-1) {
		ast[g*N+i] = 0; cn[g*N+i] = 0; ost[g*N+i] = 0;
		ack[g*N+i] = 0; unk[g*N+i] = 0; rinfl[g*N+i] = false; rst[g*N+i] = 0; rttl[g*N+i] = 0; gone[g*N+i] = false; xsent[g*N+i] = false
	}
	i = 0
}

/* a lease is handed out: P2 (token order and uniqueness) */
inline handout(x_, v_, vu_, tok_) {
	hold[x_] = true; lval[x_] = v_; vu[x_] = vu_; tok[x_] = tok_;
	printf("MSC: t=%d g%d holds v%d: valid until %d, token %d (its Acquire began after token %d)\n", now, x_, v_, vu_, tok_, floor[x_]);
	assert(tok_ < TOKMAX);
	P2_token_order = (tok_ > floor[x_]);
	assert(P2_token_order);
	P2_token_unique = !given[tok_];
	assert(P2_token_unique);
	/* without clock faults and pauses, leases never overlap (P1): then
	 * tokens rise in the order leases are handed out, even for an Acquire
	 * that began before the previous lease was handed out */
	P2_handout_order = (faulted || tok_ > retmax);
	assert(P2_handout_order);
	assert(v_ < VMAX);
#if LIMBO > 0 || defined(HANDOFF)
	/* Only where a release's DEL (or a takeover by replaces) can run
	 * before the lease's write-back on that master: a command left in a
	 * replaced connection, or another goroutine's ACQ. Where every
	 * connection is FIFO and no goroutine takes over another's value, the
	 * DEL runs after its own FEN and the raise changes nothing: lctr stays
	 * 0 and adds no states (the fence row). */
	lctr[v_] = tok_ / N;
#endif
	given[tok_] = 1;
	floor[x_] = 0;   /* used */
	if
	:: tok_ > retmax -> retmax = tok_
	:: else -> skip
	fi
}

/* a fresh round trip's answer slots */
inline fresh() {
	behind[g] = false;
	for (i : 0 .. N-1) { ast[g*N+i] = 0; cn[g*N+i] = 0 }
	i = 0
}

/* Client.attempt: decided at a majority granted, or once a majority can
 * no longer grant */
#define decided (count(ast, g, 2) >= Q || count(ast, g, 2) + count(ast, g, 0) < Q)
/* Lease.successor (and the old draw): the same, hearing master 0 out
 * (its line is unknown until it answers); a "behind" from any master or
 * master 0's error fails it, whenever it comes */
#define decided0 ((count(ast, g, 2) >= Q && ast[g*N] != 0) || count(ast, g, 2) + count(ast, g, 0) < Q)

/* leave.lua on every master (Client.leave) */
#define leaveall() leaveof(g, i)

proctype Gor(byte g)
{
	byte v, keptv, repl, att, start, t, first, nh, i, w, wr, nr, x, xst, ng, loops, nv, sa3, pm;
	bool ok, jn, rch;
	bool P2_token_order, P2_token_unique, P2_handout_order;
#ifdef MUT_HANDOFF_NO_ROUNDTRIP
	bool drawn, blockok; byte bnext, bnode;
#endif

#ifdef IDLE1
	if
	:: g == 1 -> goto end   /* the Extend scenarios need no rival */
	:: else -> skip
	fi;
#endif
again:
	/* Acquire begins (each goroutine's first step: at any point) */
	atomic {
		w = g + 1;   /* waiter id: the goroutine's entry in the lines */
		wrk[g] = 0;  /* a new Acquire: a new arrival */
		ttl[g] = TTL;
		floor[g] = retmax;
#ifdef HANDOFF
		/* the local queue: wait for the Client's turn */
		lwait[g] = true
#endif
	}
#ifdef HANDOFF
	atomic { turn[CLIENT_OF(g)] == 0 || handed[g] -> lwait[g] = false;
		if
#ifdef WAITER_ONLY_HANDED
		/* bound: the local waiter takes only a lease handed over; else it gives up */
		:: !handed[g] && g == 1 -> goto end
#endif
		:: !handed[g] -> turn[CLIENT_OF(g)] = g + 1
		:: else -> v = lval[g]; gv[g] = v; ttl[g] = httl[g]; for (i : 0 .. N-1) { ast[g*N+i] = 1 } i = 0; goto holding
		fi }
#endif

	att = 0; keptv = 0; jn = true;
#ifdef MUT_REUSE_VALUE
	atomic { nextv++; v = nextv }   /* one value for the whole Acquire */
#endif

attempt:
	/* attempt.go Client.attempt */
	atomic {
#ifndef MUT_REUSE_VALUE
	nextv++; v = nextv;   /* a fresh value per attempt */
#endif
	if
	:: att == 0 -> repl = trepl[g]
#ifdef MUT_REUSE_VALUE
	:: else -> repl = 0   /* the same value re-asserts */
#else
	:: else -> repl = keptv
#endif
	fi;
	gv[g] = v; fresh();
	gph[g] = PH_ACQ;
	start = now;
	sa3 = jn;   /* join the lines where refused (acquire.lua ARGV[4]) */
	for (i : 0 .. N-1) { send(i, ACQ, v, repl, w) }
	sa3 = 0; i = 0
	}
	/* decide at a majority granted (or when none can be) */
	atomic { decided -> gph[g] = PH_NONE; ng = count(ast, g, 2);
		/* reached: no more masters failed than a majority can spare */
		rch = (count(ast, g, 3) <= N - Q);
		if
		:: jn && !rch -> leaveall()   /* out of every line until an attempt reaches a majority (acquire.go waiting.failed) */
		:: else -> skip
		fi;
		jn = rch;
		if
		:: ng < Q ->
			rch = rch && ast[g*N] == 2;   /* from here: keep (the tie-break) */
			for (i : 0 .. N-1) { cn[g*N+i] = 0 } i = 0
		:: else -> skip
		fi }
	if
	:: ng >= Q ->
		fence();
		if
		:: atomic { ok && now < start + TTL - DRIFT ->
			handout(g, v, start + TTL - DRIFT, t * N + first);
			/* leave every line: an attempt of ours was refused (or its
			 * answer never came) somewhere, this one or an earlier */
			if
			:: att > 0 || count(ast, g, 1) + count(ast, g, 3) > 0 -> leaveall()
			:: else -> skip
			fi;
			straggle[g] = !acqsettled;   /* see answer() */
			if
			:: keptv != 0 && keptv != v -> for (i : 0 .. N-1) { send(i, DEL, keptv, 0, 0) } i = 0   /* acquire.go waiting.next: drop the kept value */
			:: else -> skip
			fi;
			ng = 0; t = 0; first = 0; keptv = 0; repl = 0; att = 0; start = 0; ok = false; rch = false; jn = false;
			goto holding }
		:: else -> cleanup()
		fi
	:: ng < Q && rch ->
		/* won master 0 with a majority answering: the tie-break; keep the
		 * keys, retry (acquire.go waiting.next: an earlier kept value is dropped) */
		atomic {
		if
		:: keptv != 0 && keptv != v -> for (i : 0 .. N-1) { send(i, DEL, keptv, 0, 0) } i = 0
		:: else -> skip
		fi;
		keptv = v }
	:: else -> cleanup()
	fi;
	atomic { ng = 0; ok = false; rch = false; t = 0; first = 0; att++;
	if
	:: att < (g == 1 -> ATT1 : ATT) -> goto attempt
	:: else -> skip
	fi }
	/* give up: abandon (delete everywhere, leave the line) */
	atomic { acqsettled ->
	gv[g] = 0;
	for (i : 0 .. N-1) { send(i, DEL, v, 0, 0) }
	if
	:: keptv != 0 && keptv != v -> for (i : 0 .. N-1) { send(i, DEL, keptv, 0, 0) }
	:: else -> skip
	fi;
	leaveall();   /* leave every line */
	forget();
#ifdef HANDOFF
	turn[CLIENT_OF(g)] = 0;
#endif
	i = 0;
	goto end
	}

holding:
	/* lease.go: checked writes, renewal, Extend, Release; lost when the
	 * validity runs out */
	do
	:: atomic { hold[g] && wr < WRITES && now < vu[g] -> incs[g] = true }
		/* the write, guarded by the check just made */
		atomic { incs[g] = false; paused[g] = false; wr++ }
	:: atomic { (g == 0 || RENEWER(g)) && hold[g] && nr < RENEWS && now < vu[g] ->
		/* renew.go renewer.renew: to every master with no renewal in flight */
		for (i : 0 .. N-1) {
			if
			:: !rinfl[g*N+i] && !gone[g*N+i] ->
				rinfl[g*N+i] = true; rst[g*N+i] = now; rttl[g*N+i] = ttl[g];
				/* the ack comes down until answered when ttl is shorter */
				if
				:: ack[g*N+i] > now + ttl[g] - DRIFT -> ack[g*N+i] = now + ttl[g] - DRIFT
				:: else -> skip
				fi;
				send(i, REN, v, SENTTTL(g), 0)
			:: else -> skip
			fi
		}
		printf("MSC: t=%d g%d: background renewal, ttl %d\n", now, g, ttl[g]);
		nr++; i = 0 }
#ifdef EXTEND
	:: atomic { g == 0 && hold[g] && xst == 0 && now < vu[g] && acqsettled ->
		/* extend.go Lease.extend to SHORT */
		xst = 1;
		ttl[g] = SHORT; extcap[g] = now + SHORT - DRIFT;
		printf("MSC: t=%d g%d: Extend(%d): acks capped at %d\n", now, g, SHORT, extcap[g]);
		if
		:: extcap[g] < vu[g] -> vu[g] = extcap[g]
		:: else -> skip
		fi;
		for (i : 0 .. N-1) {
			if
			:: ack[g*N+i] > extcap[g] -> ack[g*N+i] = extcap[g]
			:: else -> skip
			fi
		}
		i = 0;
		goto extend }
#endif
#ifdef EXTEND_LONGER
	:: atomic { g == 0 && hold[g] && xst == 1 && now < vu[g] ->
		/* then Extend to LONG */
		xst = 2; ttl[g] = LONG; extcap[g] = 0;
		printf("MSC: t=%d g%d: Extend(%d)\n", now, g, LONG);
		goto extend }
#endif
#ifdef MUT_HANDOFF_NO_ROUNDTRIP
	:: atomic { g == 0 && hold[g] && !drawn && now < vu[g] && acqsettled ->
		/* handoff.go drawBlock: draw.lua on every master, then fence */
		drawn = true;
		straggle[g] = false;
		fresh();
		gph[g] = PH_HND;
		for (i : 0 .. N-1) { send(i, DRW, v, 0, CLIENT_OF(g) + 1) }
		i = 0 }
		atomic { decided0 -> gph[g] = PH_NONE; ng = count(ast, g, 2);
			if
			:: ng >= Q && !behind[g] && (ast[g*N] == 1 || ast[g*N] == 2) -> skip
			:: else -> ng = 0; for (i : 0 .. N-1) { cn[g*N+i] = 0 } i = 0
			fi }
		if
		:: ng >= Q ->
			start = vu[g] + DRIFT - TTL;   /* write-back bounded by the lease's validity */
			fence();
			if
			:: ok -> blockok = true; bnext = t - BLOCK + 1; bnode = first
			:: else -> skip
			fi
		:: else -> skip
		fi;
		atomic { ng = 0; t = 0; first = 0; start = 0; ok = false }
#endif
	:: hold[g] -> goto release
	:: atomic { hold[g] && now >= vu[g] -> hold[g] = false }   /* lost */
	:: !hold[g] -> goto release
	od;

#if defined(EXTEND) || defined(EXTEND_LONGER)
extend:
	/* Extend: send ttl to every master not answering a renewal, again
	 * where it failed, until a majority renewed or the lease is lost */
	atomic { gph[g] = PH_EXT;
	for (i : 0 .. N-1) { ost[g*N+i] = 0; xsent[g*N+i] = false }
	i = 0 }
	do
	:: atomic { count(ost, g, 2) >= Q -> quorumack(g, x); vu[g] = x;
		printf("MSC: t=%d g%d: Extend done: valid until %d\n", now, g, x); x = 0; break }
	:: atomic { hold[g] && now >= vu[g] -> hold[g] = false; break }
	:: !hold[g] -> break
	:: atomic { hold[g] && ((!xsent[g*N] && !rinfl[g*N] && !gone[g*N]) || (!xsent[g*N+1] && !rinfl[g*N+1] && !gone[g*N+1]) || (N > 2 && !xsent[g*N+N-1] && !rinfl[g*N+N-1] && !gone[g*N+N-1])) ->
		/* to every master not answering a renewal, at once */
		for (i : 0 .. N-1) {
			if
			:: !xsent[g*N+i] && !rinfl[g*N+i] && !gone[g*N+i] ->
				xsent[g*N+i] = true; rinfl[g*N+i] = true; rst[g*N+i] = now; rttl[g*N+i] = ttl[g];
				if
				:: ack[g*N+i] > now + ttl[g] - DRIFT -> ack[g*N+i] = now + ttl[g] - DRIFT
				:: else -> skip
				fi;
				send(i, REN, v, ttl[g], 0)
			:: else -> skip
			fi
		}
		i = 0 }
	od;
	atomic { gph[g] = PH_NONE;
	for (i : 0 .. N-1) { ost[g*N+i] = 0; xsent[g*N+i] = false }
	i = 0 }
	goto holding;
#endif

release:
	/* release.go Lease.Release: no wait for the lease's stragglers; the
	 * commands to them go after their answers (sendafter) */
#ifdef HANDOFF
	atomic {
	if
	:: g < 2 -> x = 1 - g   /* the other goroutine of this Client */
	:: else -> x = g
	fi }
	if
	:: atomic { x != g && lwait[x] && hold[g] && now < vu[g] ->
		hold[g] = false }   /* this lease ends (ErrReleased) */
#ifdef MUT_HANDOFF_NO_ROUNDTRIP
		/* old handoff: the next token of a block drawn earlier, asking no master */
		if
		:: atomic { blockok && now < vu[g] ->
			handout(x, v, vu[g], bnext * N + bnode);
			handed[x] = true; turn[CLIENT_OF(g)] = x + 1;
			forget();
			goto end }
		:: else -> skip
		fi
#else
		/* handoff.go Lease.handOff, successor: handoff.lua with the next
		 * holder's fresh value and the lease's TTL, at once to every master
		 * that answered the lease's acquire, after its answer to the others;
		 * decided at a majority drawn with master 0 heard, then fence */
		atomic {
		straggle[g] = false;
		pendmask();
		fresh(); hph[g] = true;
		start = now;
#ifdef MUT_HANDOFF_SAME_VALUE
		nv = v;   /* the previous design: the key keeps the value */
#else
		nextv++; nv = nextv;
#endif
		sa3 = nv;
		gph[g] = PH_HND;
		for (i : 0 .. N-1) { sendafter(i, HND, v, ttl[g], CLIENT_OF(g) + 1) }
		sa3 = 0; i = 0; pm = 0 }
		atomic { decided0 -> gph[g] = PH_NONE; ng = count(ast, g, 2);
			if
			/* a majority drew, master 0 answered, no master said behind */
			:: ng >= Q && !behind[g] && (ast[g*N] == 1 || ast[g*N] == 2) -> skip
			:: else -> ng = 0; for (i : 0 .. N-1) { cn[g*N+i] = 0 } i = 0
			fi }
		if
		:: ng >= Q ->
			fence();
			if
			:: atomic { ok && now < start + TTL - DRIFT ->
				httl[x] = ttl[g];
				handout(x, nv, start + ttl[g] - DRIFT, t * N + first);
				handed[x] = true; turn[CLIENT_OF(g)] = x + 1;
				ng = 0; t = 0; first = 0; start = 0; ok = false; nv = 0 }
				/* handOff's bury: once every answer is in, delete the old
				 * value where the key was not swapped (refused, behind,
				 * or no answer); nobody waits for these */
				atomic { acqsettled ->
				for (i : 0 .. N-1) {
					if
					:: ast[g*N+i] != 2 -> send(i, DEL, v, 0, 0)
					:: else -> skip
					fi
				}
				forget();
				goto end }
			:: else -> skip
			fi
		:: else -> skip
		fi;
		/* not handed over: release as usual once the handoff's answers
		 * are in (a late PEXPIRE is harmless: the key no longer holds v) */
		atomic { acqsettled -> ng = 0 }
#endif
	:: else -> skip
	fi;
#endif
	/* release.go Lease.release: the lease ends before anything is sent */
	atomic {
	straggle[g] = false;
	hold[g] = false;
	pendmask();
	gph[g] = PH_DEL; gdv[g] = v;
	sa3 = nv;   /* a failed handoff's next value: deleted too (release.lua ARGV[2]) */
	for (i : 0 .. N-1) { ost[g*N+i] = 0; sendafter(i, DEL, v, 0, 0) }
	sa3 = 0; nv = 0; pm = 0;
	i = 0 }
	/* returns once the outcome is known: a majority confirmed, or more
	 * than N-Q found the key gone or taken and the failures can no longer
	 * change whether a majority was reached, or every master answered;
	 * the other deletes go on. Lost when a majority report the key gone
	 * or held by another value */
	atomic { count(ost, g, 2) >= Q ||
		(count(ost, g, 1) > N - Q && (count(ost, g, 3) > N - Q || count(ost, g, 3) + count(ost, g, 0) <= N - Q)) ||
		delsettled ->
	relost[g] = (count(ost, g, 1) >= Q -> 1 : 2);
#ifdef HANDOFF
	/* turn.pass at the return: the next first attempt may replace v */
	if
	:: g < 2 -> trepl[1 - g] = v
	:: else -> skip
	fi;
	turn[CLIENT_OF(g)] = 0;
#endif
	gph[g] = PH_NONE; gdv[g] = 0;
	forget();
	loops++;
	if
	:: loops < (g == 0 -> LOOPS : 1) -> wr = 0; nr = 0; xst = 0; v = 0; x = 0; goto again
	:: else -> skip
	fi }
end:
	skip
}

init {
	atomic {
		ctr[0] = CTR0;
		run Gor(0);
		run Gor(1);
#if G > 2
		run Gor(2);
#endif
	}
}
