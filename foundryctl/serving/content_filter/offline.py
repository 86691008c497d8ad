"""The offline classifier: transparent rules, no model, no network.

Each sentence is normalised (lower case, common letter-for-digit swaps undone, a little
chat slang expanded), phrases that are harmless in tech support and everyday English are
masked ("kill the process", "shoot me an email", "dying to play"), and then each category
looks for its own features: what is done (an act, an explicit term, an insult), to whom (a
person, a protected group, oneself), and how it is framed (first-person intent, a request
for instructions, a plan, or a news, history or fiction report). Severity comes from the
strongest combination, so a bare mention is low, a threat or a depiction medium, and a
plan, instructions or an incitement high.

It is a keyword system with some grammar and it misses what keyword systems miss:
obfuscation beyond simple digit swaps, implicit or coded hate, sarcasm, and anything not in
English. docs/content-filtering.md gives its measured precision and recall.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from foundryctl.serving.content_filter.policy import CATEGORIES, SEVERITIES

SAFE, LOW, MEDIUM, HIGH = range(4)


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# --- normalisation ---------------------------------------------------------------------

_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
# Only a digit or symbol between two letters is a swapped letter ("k1ll", "p0rn"); "ps5",
# "1080p" and "$5" stay as they are.
_LEET_RE = _c(r"(?<=[a-z])[013457@$!](?=[a-z])")
_SLANG = {"u": "you", "ur": "your", "ppl": "people", "gonna": "going to", "wanna": "want to",
          "im": "i'm", "ima": "i'm going to", "gunna": "going to", "cuz": "because", "plz": "please"}
_SLANG_RE = _c(r"\b(?:" + "|".join(_SLANG) + r")\b")
_SENTENCES = _c(r"[^.!?;\n]+")


def normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = _LEET_RE.sub(lambda m: _LEET[m.group()], text)
    return _SLANG_RE.sub(lambda m: _SLANG[m.group()], text)


# --- benign phrases, masked before any category looks --------------------------------

_TECH_OBJECTS = _any(
    "process(?:es)?", "task", "pid", "jobs?", "apps?", "application", "programs?", "services?", "daemon",
    "session", "switch", "server", "containers?", "threads?", "games?", "tabs?", "queries", "query",
    "scripts?", "build", "branch", "feature", "bug", "connection", "workers?", "pods?", "instance",
    "the power", "(?:the )?engine", "notifications?", "music", "lights")
_BENIGN = _c("|".join([
    # kill as in processes, performance and idioms
    rf"\bkill(?:s|ed|ing)?\s+(?:-\d+|(?:the|a|an|this|that|all|my|our|your|off)\s+)*(?:\w+\s+)?{_TECH_OBJECTS}\b",
    r"\bkill\s+-\d+|\bkillall\b|\boom[- ]?kill\w*|\bkill switch\b",
    r"\bkill(?:ed|ing)\s+it\b|\b(?:is|are|was|were)\s+killing\s+(?:me|us|it|our\s+\w+)\b",
    r"\bkilling\s+(?:our|my|the)\s+(?:throughput|performance|battery|fps|frame ?rate|latency|sales|vibe)\b",
    r"\bkiller\s+(?:app|feature|game|deal|salesman|combo|track|views?)\b|\b(?:is|was|'s) (?:a )?killer\b",
    r"\bi'?d kill for\b|\bkill (?:some )?time\b|\bkill two birds\b",
    # shoot, fire, hang, hit, beat, blow, cut, strip, bomb as everyday or technical words
    r"\bshoot\s+(?:me|us|him|her|them)\s+(?:an?|the|your)\s+(?:e-?mail|message|text|link|note|dm|line|invite|reply)\b",
    r"\bshoot(?:ing)?\s+(?:better\s+|some\s+|a\s+)?(?:photos?|pictures?|videos?|footage|film|scene|hoops)\b",
    r"\bshooting stars?\b|\bphoto ?shoot\b|\bshooters?\s+(?:genre|games?)\b|\btrouble ?shoot\w*",
    r"\bfire(?:d|s)?\s+(?:two|the|a|an|our|my|\d+)?\s*(?:contractors?|employees?|staff|people|workers?|developers?|hires?)\b",
    r"\bfire alarm\b|\bfire ?wall\b|\bcease ?fire\b|\bfire up\b",
    r"\bhang(?:s|ing)?\s+(?:up|out|on|the\s+tv|a\s+shelf|a\s+picture)\b|\bhanging indent\b|\bhangs\b",
    r"\bhit\s+(?:me|us)\s+up\b|\bhit\s+(?:the|a)\s+(?:submit|button|key|limit|wall|road|jackpot|target|deadline)\b",
    r"\bbeat(?:s|ing)?\s+(?:me|us|you|him|her|them)\s+(?:at\b|in\s+(?:a\s+|the\s+)?(?:game|match|race|round|chess)\b)|\bbeat\s+the\s+(?:\w+\s+)?(?:game|level|boss|record|deadline|traffic|odds|high score)\b",
    r"\b(?:final|last|end|mini|raid|first|level|secret|world) ?boss(?:es)?\b|\bmurder(?:ing|ed)?\s+(?:mystery|mysteries|this|that|it)\b",
    r"\bblow\s+away\b|\bblown\s+away\b|\bblow\s+up\s+(?:the\s+)?(?:photo|image|picture)\b",
    r"\bcut(?:s|ting)?\s+(?:a|the|my|your|this)?\s*(?:video|clip|hair|power|cable|costs?|price|corners|release|branch)\b",
    r"\bcut(?:ting|s)?\s+out\b",
    r"\bstrip(?:s|ping)?\s+(?:the\s+)?(?:old\s+)?(?:whitespace|paint|spaces|tags|html|wallpaper|string)\b",
    r"\bbomb(?:ed|s)?\s+(?:my|the|an?)\s+(?:interview|exam|test|presentation)\b|\bphoto ?bomb\w*|\bbath ?bombs?\b",
    r"\bnuke\s+(?:the\s+)?(?:cache|database|db|folder|directory|branch)\b",
    r"\bdrop dead\b|\bdead\s+(?:tired|pixels?|serious|end|link|code|zone)\b",
    r"\b(?:dying|dyin)\s+to\b|\b(?:nearly|almost|literally)\s+died\s+laughing\b|\bdied\s+laughing\b",
    r"\b(?:so|too)\s+\w+\s+(?:that\s+)?i\s+(?:just\s+)?(?:wanted|want|could)\s+(?:to\s+)?die\b",
    r"\bcould eat a horse\b|\bgun ?metal\b|\bpenetration test\w*|\battack surface\b|\bbrute[- ]force attack\b",
    # sexual words that are not sexual here
    r"\bsex\s+(?:education|ed|of\s+the|and\s+date|offenders?\s+registry|chromosomes?|ratio)\b|\byour\s+sex\b",
    r"\bsexual\s+(?:harassment|health|orientation|assault\s+awareness)\b|\bage of consent\b",
    r"\b(?:chicken|turkey|duck)\s+breasts?\b|\bbreast\s*(?:cancer|feeding|milk|screening|exam)\b|\bbreastfeeding\b",
    r"\bnaked eye\b|\bblack friday\b|\bhardcore\s+(?:gamer|mode|fans?)\b",
    # processes have parents, children and zombies
    r"\b(?:child|parent|zombie|orphan(?:ed)?)\s+(?:process|processes|threads?|nodes?|elements?|pods?|tasks?|windows?)\b",
    r"\bparent (?:exits|dies|terminates|process)\b",
]))
_MASK = " _ "


# --- shared vocabulary ---------------------------------------------------------------

_GROUP = _any(
    r"muslims?", r"islam", r"jews", r"jewish people", r"the jews", r"christians?", r"catholics?", r"hindus?",
    r"sikhs?", r"buddhists?", r"atheists?", r"black people", r"blacks", r"black folks", r"whites",
    r"white people", r"asians?", r"chinese(?:\s+people)?", r"koreans", r"indians", r"arabs?", r"africans?",
    r"mexicans?", r"latinos?", r"hispanics?", r"immigrants?", r"migrants?", r"refugees?", r"foreigners",
    r"gypsies", r"roma", r"irish", r"gays", r"gay people", r"lesbians?", r"homosexuals?", r"homosexuality",
    r"bisexuals?", r"trans(?:gender)?\s+(?:people|women|men|folks|kids)", r"queers?", r"women", r"girls",
    r"females", r"disabled(?:\s+(?:people|kids|children))?", r"the disabled", r"fat people",
    r"infidels", r"kafirs?", r"gay marriage", r"mosques?", r"synagogues?", r"churches", r"temples?")
_RELATIONS = _any(
    "neighbou?rs?", "co-?workers?", "colleagues?", "boss", "manager", "wife", "husband", "girlfriend",
    "boyfriend", "partner", "brother", "sister", "dad", "father", "mom", "mum", "mother", "parents?",
    "son", "daughter", "teacher", "classmates?", "friends?", "ex", "family", "roommate", "landlord",
    "referee", "reporter", "journalists?", "man", "woman", "guy", "girl", "boy", "kids?", "child",
    "children", "baby", "officers?", "cops?", "stranger", "guards?", "victims?", "president",
    "senator", "judge", "politicians?", "prisoners?", "hostages?", "protesters?", "villagers?",
    "civilians?", "students?", "customers?", "employees?", "people", "crowd", "person", "infidels?",
    "kafirs?", "opponents?", "enemies", "enemy", "soldiers?")
_PERSON = _any(
    r"you", r"me", r"him", r"her(?!\s+(?:body|clothes|own))", r"them", r"us", r"everyone", r"everybody",
    r"someone", r"somebody", r"anyone", r"people", r"civilians", r"thousands(?:\s+of\s+\w+)?",
    r"hundreds(?:\s+of\s+\w+)?", rf"(?:my|his|her|your|their|our|the|a|an|that|this|some|every|all\s+the|all)\s+(?:\w+\s+)?{_RELATIONS}",
    rf"{_RELATIONS}", _GROUP)
_ANIMAL = _any(r"(?:the|a|my|his|her|your|that)\s+(?:\w+\s+)?(?:cat|dog|puppy|kitten|deer|animal|bird|horse|rabbit|pit ?bull)s?")
_INTENT = _any(
    r"i'?m going to", r"i am going to", r"i'?ll", r"i will", r"i want to", r"i'?d like to", r"i'?d love to",
    r"i'?m about to", r"i'?m planning to", r"i plan to", r"let'?s", r"we should", r"we must", r"we need to",
    r"we'?re going to", r"should i", r"i'?m gonna", r"i'?m\s+\w+ing to", r"i intend to", r"i'?ve decided to",
    r"join the \w+ and")
_INSTRUCT = _any(
    r"how (?:do|can|could|would|should) (?:i|you|we|one)", r"how to", r"how much \w+ (?:to|would|does it take)",
    r"(?:best|easiest|quickest|fastest|simplest|surest|most painless|painless) (?:way|place|method|spot)s?",
    r"step[- ]by[- ]step", r"instructions?", r"tutorial", r"tips", r"recipe for", r"without (?:getting caught|anyone noticing|them noticing)",
    r"follow these steps", r"what \w+(?:\s+\w+)? (?:can|should|do) i", r"guide to", r"teach me")
_PLAN = _any(r"tonight", r"tomorrow", r"on (?:mon|tues|wednes|thurs|fri|satur|sun)day", r"this weekend",
             r"after (?:work|school|class)", r"next week", r"at (?:the|my|our) (?:school|rally|office|church|mosque|concert|mall)")
_MASS = _any(r"everyone", r"everybody", r"them all", r"all of them", r"every \w+", r"all the \w+", r"all \w+s\b",
             r"thousands", r"as many as", r"the (?:whole|entire) \w+")
_REPORT = _any(
    r"police said", r"according to", r"reported", r"reports?", r"the article", r"news", r"historians?",
    r"history", r"in (?:19|20)\d\d", r"during the war", r"the war", r"world war", r"genocide", r"journalists?",
    r"the study", r"rates? (?:rose|fell|rise|increased)", r"statistics", r"documentary")
_FICTION = _any(
    r"in the (?:game|movie|film|novel|book|show|series|story|episode|comic|anime)", r"(?:write|tell me|give me) a (?:story|poem|scene|script)",
    r"the (?:game|movie|film|novel|story|character|show|series|episode|season)", r"season \w+", r"character", r"chapter", r"a scene where", r"zombies?", r"\bnpcs?\b",
    r"\bplot\b", r"fiction")
# Video games: players kill bosses and each other all day. A game frame caps violence at low
# (medium when graphic), like fiction; support for games is this product's home ground. Only
# cues that are hard to use outside a game, so that "at the game tomorrow" stays a threat.
_GAME = _any(
    r"halo", r"elden ring", r"call of duty", r"fortnite", r"minecraft", r"skyrim", r"among us", r"dead island",
    r"gta", r"grand theft auto", r"rust", r"apex legends", r"valorant", r"overwatch", r"destiny 2", r"gears of war",
    r"diablo", r"starfield", r"fallout \d", r"battlefield", r"counter-?strike", r"cs2", r"pubg", r"warzone",
    r"league of legends", r"dark souls", r"resident evil", r"mortal kombat", r"street fighter", r"roblox",
    r"sea of thieves", r"assassin'?s creed", r"far cry", r"the witcher", r"cyberpunk 2077", r"dota 2?",
    r"world of warcraft", r"tekken", r"in[- ]game", r"multiplayer", r"pvp", r"pve", r"co-?op", r"kill ?streaks?",
    r"k/d", r"headshots?", r"respawn\w*", r"npcs?", r"mobs", r"boss (?:fight|battle)s?",
    r"(?:final|last|mini|raid|secret) boss", r"impostor", r"creepers?", r"the enemy team", r"enemy players?",
    r"gamertag", r"voice chat", r"party chat", r"video games?")
# Someone asking how to report abuse is not asking how to commit it.
_REPORTING = _any(r"(?:how (?:do|can) i |where (?:do|can) i |want to |should i )?(?:report|block|mute) "
                  r"(?:him|her|them|this|that|it|the|a|an)\b", r"said (?:he|she|they) (?:would|will|was going to)",
                  r"threatened (?:me|us)")

_C_INTENT = _c(rf"\b{_INTENT}\b")
_C_INSTRUCT = _c(rf"\b{_INSTRUCT}\b")
_C_PLAN = _c(rf"\b{_PLAN}\b")
_C_MASS = _c(rf"\b{_MASS}")
_C_REPORT = _c(rf"\b{_REPORT}\b")
_C_FICTION = _c(rf"\b{_FICTION}\b")
_C_GAME = _c(rf"\b{_GAME}\b")
_C_REPORTING = _c(rf"\b{_REPORTING}")
_C_GRAPHIC = _c(r"\b(?:in (?:graphic |gory |vivid )?detail|graphic(?:ally)?|gory|until (?:he|she|they|it|you) (?:stop|stopped|scream|screams|screamed|die|dies|died|bleed|bled|passe?s? out|can'?t)\w*"
                r"|bleeds? out|bled out|blood everywhere|(?:ends? up|end up|wind up) in (?:the )?hospital|so badly|metal pipes?|skull)\b")


# --- violence --------------------------------------------------------------------------

_TARGET = rf"(?:\s+(?:\w+\s+){{0,2}}?{_PERSON}\b)"
_V_EXTREME = _c(
    r"\b(?:massacr\w*|slaughter\w*|behead\w*|decapitat\w*|lynch\w*|tortur\w*|exterminat\w*|"
    r"kidnap\w*|burn(?:ing|ed|t)? down|mass shooting|shoot up (?:the|a|my) \w+|wipe (?:them )?out)\b")
_V_ATROCITY = _c(r"\b(?:genocid\w*|ethnic cleansing|war crimes?|atrocit\w*|massacres)\b")  # named, not done
_V_LETHAL = _c(
    rf"\b(?:kill(?:s|ed|ing)?|murder\w*|assassinat\w*|strangl\w*|stab(?:s|bed|bing)?|shoot(?:s|ing)?|shot|"
    rf"poison(?:s|ed|ing)?|execut(?:e|ed|ing)|drown|suffocat\w*|run over){_TARGET}"
    r"|\b(?:murder\w*|stab(?:s|bed|bing)? (?:through|wounds?)|bleed out|bullet|gun (?:them|him|her|you) down|shot dead|shot and killed|"
    r"(?:stabbed|beaten|shot|hacked|burned|kicked) to death|(?:was|were|got|been) (?:killed|murdered|shot|stabbed))\b")
_V_HARM = _c(
    rf"\b(?:hurt(?:s|ing)?|hit(?:s|ting)?|punch\w*|beat(?:s|en|ing)?(?:\s+up)?|kick(?:s|ed|ing)?|slap\w*|"
    rf"assault\w*|attack(?:s|ed|ing)?|choke|chok(?:ed|ing)|smash\w*|break(?:s)?|broke|bash\w*|whip\w*|"
    rf"threaten\w*|b[e3]at the (?:crap|shit|hell) out of|burn(?:s|ed)?){_TARGET}"
    r"|\bbreak (?:his|her|your|my|their) (?:legs?|arms?|neck|jaw|nose|face)\b|\bbeat (?:him|her|them|you) up\b"
    r"|\b(?:was|were|got|been|being) (?:beaten|attacked|assaulted|punched|stabbed)\b")
_V_ANIMAL = _c(rf"\b(?:kill\w*|shoot\w*|shot|tortur\w*|poison\w*|kick\w*|beat\w*|stab\w*)\s+{_ANIMAL}")
_V_WEAPON_MAKE = _c(
    r"\b(?:pipe bomb|molotov|nail bomb|car bomb|ied|napalm|nerve (?:agent|gas)|ricin|toxic gas|poison(?:ous)? gas|"
    r"(?:make|build|assemble|mix|cook)\s+(?:\w+\s+){0,3}(?:bomb|explosives?|grenade|silencer|ghost gun|toxic|poison))\b")
_V_WEAPON_GET = _c(r"\b(?:get|buy|obtain|acquire)\s+(?:a|an)\s+(?:gun|firearm|rifle|pistol|weapon)\s+"
                   r"(?:without|illegally|untraceable)|\bunregistered (?:gun|firearm)\b|\bstab[- ]?proof\b|\bthrough a vest\b")
_V_ENDORSE = _c(r"\b(?:deserves?|deserved) (?:a bullet|to (?:die|be shot|be killed|be hanged|hang|suffer))"
                r"|\bshould (?:all )?be (?:shot|killed|hanged|executed|gassed|lynched)\b|\bfight back\b")
_V_SELF_EXCLUDE = _c(r"\b(?:myself|yourself|himself|herself|themselves)\b")
_V_IMPERATIVE = _c(r"^\s*(?:just |go |now |then |and )?(?:kill|murder|stab|shoot|beat|massacre|slaughter|burn|lynch|attack|hit|punch|exterminate)\b")


def _violence(s: str) -> tuple[int, str]:
    extreme = _V_EXTREME.search(s)
    atrocity = _V_ATROCITY.search(s)
    lethal = _V_LETHAL.search(s)
    harm = _V_HARM.search(s)
    animal = _V_ANIMAL.search(s)
    make = _V_WEAPON_MAKE.search(s)
    get = _V_WEAPON_GET.search(s)
    endorse = _V_ENDORSE.search(s)
    if not (extreme or atrocity or lethal or harm or animal or make or get or endorse):
        return SAFE, ""
    graphic = bool(_C_GRAPHIC.search(s))
    if _C_GAME.search(s) and not make and not (_C_PLAN.search(s) and _C_INTENT.search(s)):
        return (MEDIUM, "graphic violence in a game") if graphic else (LOW, "violence in a game")
    if _C_REPORTING.search(s):
        return LOW, "reports a threat or abuse"
    intent = bool(_C_INTENT.search(s) or _V_IMPERATIVE.search(s))
    instruct = bool(_C_INSTRUCT.search(s))
    if make and (intent or instruct):
        return HIGH, "instructions for a weapon"
    if endorse and endorse.group().startswith(("deserv", "should")):
        return HIGH, "endorses killing"
    act = "extreme" if extreme else "lethal" if lethal else "harm" if harm else ""
    if act and _V_SELF_EXCLUDE.search((extreme or lethal or harm).group()) and not extreme:
        act = ""  # hurting oneself is self-harm's business
    if not act and atrocity:
        act = "atrocity"
    if instruct and act in ("extreme", "lethal"):
        return HIGH, f"asks how to do {act} violence"
    if intent and act in ("extreme", "lethal", "harm"):
        if act == "extreme":
            return HIGH, "intent, extreme violence"
        escalate = _C_PLAN.search(s) or _C_MASS.search(s) or _C_GRAPHIC.search(s) or _GROUP_RE.search(s)
        if act == "lethal":
            return (HIGH, "intent to kill, with a plan or many targets") if escalate else (MEDIUM, "threat to kill")
        return (HIGH, "intent to harm, seriously") if _C_GRAPHIC.search(s) else (MEDIUM, "intent to harm")
    if instruct and (act == "harm" or get or make):
        return MEDIUM, "asks how to harm or get a weapon"
    if endorse:
        return MEDIUM, "incitement"
    if _C_FICTION.search(s):
        return (MEDIUM, "graphic fictional violence") if graphic else (LOW, "fictional violence")
    if _C_REPORT.search(s):
        return LOW, "reported violence"
    if act in ("extreme", "lethal", "atrocity"):
        return MEDIUM, "depicts violence"
    if act == "harm":
        return (MEDIUM, "graphic depiction of harm") if graphic else (LOW, "mentions harm")
    if animal:
        return LOW, "harm to an animal"
    return LOW, "mentions a weapon"


# --- self-harm -------------------------------------------------------------------------

_SELF_BODY = r"(?:myself|my (?:own )?(?:wrists?|arms?|legs?|thighs?|skin|stomach|body|face))"
_SH_ACT = _c(
    rf"\b(?:kill(?:ing)?|hurt(?:ing)?|harm(?:ing)?|cut(?:ting)?|burn(?:ing)?|starv(?:e|ing)|hit(?:ting)?|"
    rf"punish(?:ing)?|poison(?:ing)?|hang(?:ing)?|drown(?:ing)?|shoot(?:ing)?|unalive|scratch(?:ing)?|bruis\w*) {_SELF_BODY}"
    r"|\b(?:hurt|harm|cut|kill)(?:s|ing)? (?:herself|himself|themselves)\b"
    r"|\bself[- ]?harm\w*|\bcutting (?:again|myself)\b|\bunalive\b|\bstarving myself\b|\bpro[- ]?ana\b|\bthinspo\b|\bpurg(?:e|ing) after\b")
_SH_DESIRE = _c(
    r"\b(?:i (?:really |just )?(?:want|wanna|wish|need) (?:to|i could) die|i want to be dead|i wish i (?:was|were) dead|"
    r"end(?:ing)? (?:my life|it all)|take my (?:own )?life|tired of (?:living|being alive)|don'?t want to (?:live|be alive|exist|be here)|"
    r"better off (?:dead|without me)|nobody would (?:care|notice|miss me)|no reason to live|sleep forever|"
    r"suicidal|kill myself|unalive myself|want to disappear forever)\b")
_SH_MENTION = _c(r"\b(?:suicide|suicidal|self[- ]?harm\w*|overdos\w*|kms|scars?)\b")
# Methods and plans: high on their own. Dosage questions only with intent nearby.
_SH_METHOD = _c(
    r"\b(?:lethal dose|fatal dose|hit a vein|(?:quick|quickest|easy|easiest|painless|best|fastest) way to (?:die|end it|kill myself)|"
    r"(?:od|overdose) without|jump off (?:a|the) (?:bridge|roof|building|cliff)|rope (?:is )?ready|"
    r"took (?:a bunch of|all (?:my|the)|too many) (?:pills|tablets)|goodbye (?:note|letter)s?|suppress (?:my )?hunger|"
    r"hide (?:my |the |it )?weight loss|pro[- ]?ana tips)\b")
_SH_DOSAGE = _c(r"\b(?:how many (?:\w+ )?(?:pills|tablets|mg)|how deep|how long does it take to die|how high)\b")
_SH_SUPPORT = _c(
    r"\b(?:therapist|therapy|getting help|get help|hotline|helpline|crisis line|prevention|recovery|recovered|"
    r"years ago|used to|scars? fade|my friend|she wants|he wants|they want|novel|character|chapter|rates|report|says)\b|\blol\b")


def _self_harm(s: str, context: str) -> tuple[int, str]:
    act = _SH_ACT.search(s)
    desire = _SH_DESIRE.search(s) or _SH_DESIRE.search(context)
    method = _SH_METHOD.search(s) or (_SH_DOSAGE.search(s) if act or desire else None)
    mention = _SH_MENTION.search(s)
    if not (act or desire or method or mention):
        return SAFE, ""
    support = _SH_SUPPORT.search(s)
    if method and not support:
        return HIGH, "method or plan for self-harm"
    if act or desire:
        if support:
            return LOW, "self-harm mentioned with support, recovery or at a distance"
        if _C_INSTRUCT.search(s):
            return HIGH, "asks how to harm oneself"
        if _C_PLAN.search(s):
            return HIGH, "self-harm with a plan"
        return MEDIUM, "intent or acts of self-harm"
    return LOW, "mentions self-harm"


# --- sexual ----------------------------------------------------------------------------

_X_HIGH = _c(r"\b(?:deepthroat\w*|gangbang\w*|hardcore (?:porn|sex|videos?|xxx)|xxx hardcore|creampie|bukkake)\b")
_X_MEDIUM = _c(
    r"\b(?:porn\w*|xxx|nudes?|naked|nudity|tits|titties|dick ?pics?|cock|pussy|blow ?jobs?|hand ?jobs?|"
    r"cum(?:ming|shot)?|orgasm\w*|erotic\w*|horny|sext(?:ing)?|cybersex|phone sex|talk dirty|dirty talk|"
    r"strip (?:for|tease)|striptease|stripper|undress\w*|onlyfans|have sex|having sex|had sex|sex (?:scene|tape|video|chat)|"
    r"make love|making love|(?:rip|ripping|tear|tearing) (?:her|his|your|my) clothes off|bang (?:her|him|you|me)|"
    r"fuck(?:ing|ed)? (?:her|him|me|you) (?:from|hard|in|on|while|until)|fuck(?:ing|ed)? (?:her|him) (?:\w+ )?(?:from|hard|in|on|while)|"
    r"genitals?|penis|vagina|clit\w*|hooker|prostitut\w*|escort(?:s|ing)?|lap dance)\b")
_X_LOW = _c(
    r"\b(?:sexy|sex|sexual\w*|kiss(?:ed|es|ing)?|made out|make out|making out|hook ?up|one[- ]night stand|threesome|"
    r"bdsm|kink\w*|fetish\w*|vibrator|dildo|sex toys?|condoms?|lingerie|masturbat\w*|foreplay|aroused|seduc\w*|"
    r"spent the night together|slept together|bedroom|what are you wearing|(?:nice|great|hot|fat) (?:ass|butt|rack)|"
    r"oral sex|boobs|breasts?)\b")
_X_EXPLICIT = _c(r"\b(?:explicit(?:ly)?|in (?:graphic |vivid |great |full )?detail|graphic(?:ally)?)\b")
_X_SOLICIT = _c(r"\b(?:how much (?:for|does it cost|is it)|price|prices|rates?|\$\s?\d+|per hour|an hour|book (?:a|an|one)|hire (?:a|an)|"
                r"looking for (?:a|an) (?:prostitute|escort|hooker)|near me|link in bio|dm me)\b")
_X_SOLICIT_TERM = _c(r"\b(?:prostitut\w*|escorts?|hooker|nudes|onlyfans|sex work\w*|happy ending)\b")
_X_MINOR = _c(r"\b(?:underage|under[- ]age|minors?|child(?:ren)?|kids?|teens?|teenage(?:rs?)?|schoolgirls?|preteens?|\d{1,2}[- ]year[- ]olds?|loli\w*)\b")


def _sexual(s: str) -> tuple[int, str]:
    high = _X_HIGH.search(s)
    medium = _X_MEDIUM.search(s)
    low = _X_LOW.search(s)
    if not (high or medium or low):
        return SAFE, ""
    if (medium or high) and _X_MINOR.search(s):
        return HIGH, "sexual content involving minors"
    if high:
        return HIGH, "explicit sexual content"
    if _X_SOLICIT_TERM.search(s) and _X_SOLICIT.search(s):
        return HIGH, "solicitation of sexual services"
    if medium and _X_EXPLICIT.search(s):
        return HIGH, "explicit sexual description"
    if low and low.group() in ("sex", "sexual") and _X_EXPLICIT.search(s) and _C_INSTRUCT.search(s) is None:
        return HIGH, "explicit sexual description"
    if medium and medium.group().startswith(("prostitut", "escort", "hooker")):
        return LOW, "mentions sex work"
    if medium:
        return MEDIUM, "sexual content"
    return LOW, "mild sexual reference"


# --- hate ------------------------------------------------------------------------------

_GROUP_RE = _c(rf"\b{_GROUP}\b")
_H_DEHUMANISE = _c(
    r"\b(?:vermin|parasites?|cockroach\w*|rats|animals|savages?|subhuman\w*|infestation|infest\w*|plague|"
    r"monkeys?|apes|filth|scum|not (?:even )?human|breed like)\b")
_H_INSULT = _c(
    r"\b(?:inferior|disgusting|stupid|idiots?|morons?|brainwashed|primitive|freaks?|mentally ill|sick(?:ness)?|"
    r"diseased?|terrorists?|rapists?|criminals?|thieves|drug dealers|lazy|useless|burdens?|a waste|trash|evil|dirty|"
    r"degenerates?|perverts?|retarded|backwards|less intelligent|ugly|worthless)\b")
_H_SCORN = _c(
    r"\b(?:abomination|unnatural|a sin|sinful|belong in the kitchen|too emotional|all the same|need(?:s)? the right (?:man|woman)|"
    r"needs? curing|cured|can'?t be trusted|are all|should stay home|kept out of|shouldn'?t be allowed|should not be allowed|"
    r"not allowed)\b")
_H_EXCLUDE = _c(
    r"\b(?:should be (?:banned|deported|kicked out|driven out|removed|sterili[sz]ed|locked up|expelled)|deport (?:them|all)|"
    r"go back to (?:your (?:own )?country|africa|asia|mexico|china|india|the desert)|don'?t belong here|not welcome here|"
    r"(?:no \w+, ){1,}no \w+)\b")
_H_HATRED = _c(rf"\bi (?:hate|despise|can'?t stand) {_GROUP}\b")
_H_CONSPIRACY = _c(r"\b(?:control (?:the|all the) (?:banks|media|world|government|money))\b")
_H_EXTREME = _c(r"\b(?:hitler was right|white genocide|final solution|great replacement|race war|gas the \w+|holocaust (?:hoax|denial|myth)|"
                r"14 ?words|heil hitler|wipe out the \w+|exterminate (?:all|every|the) \w+)\b")
_H_LYNCH = _c(r"\blynch\w*")


def _hate(s: str, violence: int) -> tuple[int, str]:
    if _H_EXTREME.search(s):
        return HIGH, "extremist hate"
    group = _GROUP_RE.search(s)
    dehumanise = _H_DEHUMANISE.search(s)
    if group and violence >= MEDIUM and (_V_EXTREME.search(s) or _V_LETHAL.search(s) or _V_HARM.search(s)):
        return HIGH, "violence against a protected group"
    if _H_LYNCH.search(s):
        return MEDIUM, "racist violence"
    if _H_EXCLUDE.search(s) and (group or dehumanise or re.search(r"\b(?:them|they)\b", s)):
        return MEDIUM, "exclusion of a group"
    if not group:
        if dehumanise and re.search(r"\b(?:they'?re|they are|those people|these people)\b", s):
            return MEDIUM, "dehumanising language"
        return SAFE, ""
    if dehumanise or _H_INSULT.search(s) or _H_HATRED.search(s) or _H_CONSPIRACY.search(s):
        return MEDIUM, "insults or dehumanises a protected group"
    if _H_SCORN.search(s):
        return LOW, "prejudice against a protected group"
    return SAFE, ""


# --- the classifier --------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _sentence(sentence: str, context: str) -> tuple[tuple[int, str], ...]:
    """(level, reason) per category, in CATEGORIES order, for one normalised, masked sentence."""
    violence = _violence(sentence)
    return (_hate(sentence, violence[0]), _sexual(sentence), violence, _self_harm(sentence, context))


def _sentences(text: str) -> Iterable[str]:
    for match in _SENTENCES.finditer(text):
        sentence = match.group().strip()
        if len(sentence) > 1:
            yield sentence


# A regex search holds the GIL for its whole scan: over a multi-megabyte prompt one pattern
# stalls the server's event loop for most of a second. Longer texts are read in blocks this
# long, cut at whitespace, each overlapping the next so that a phrase across a cut is seen whole.
BLOCK_CHARS = 4_096
BLOCK_OVERLAP = 256
_SPACE = _c(r"\s")


def _blocks(text: str) -> Iterable[str]:
    """The text itself when it is short; else overlapping pieces of at most BLOCK_CHARS."""
    start = 0
    while len(text) - start > BLOCK_CHARS:
        end = start + BLOCK_CHARS
        cut = max(text.rfind(" ", start + BLOCK_OVERLAP * 2, end), text.rfind("\n", start + BLOCK_OVERLAP * 2, end))
        end = cut if cut > 0 else end
        yield text[start:end]
        # the next block starts at a word, never inside one ("skill" read as "kill")
        start = end - BLOCK_OVERLAP
        space = _SPACE.search(text, start, end)
        start = space.start() if space else start
    yield text[start:]


class OfflineClassifier:
    """Rule-based, English only; microseconds per sentence, no network, no model."""

    name = "offline"

    def classify(self, text: str) -> dict[str, str]:
        return {category: SEVERITIES[level] for category, (level, _) in self.explain(text).items()}

    def explain(self, text: str) -> dict[str, tuple[int, str]]:
        """Each category's level (0-3) and the rule that set it, for the strongest sentence."""
        sentences = [sentence for block in _blocks(text)
                     for sentence in _sentences(_BENIGN.sub(_MASK, normalise(block)))]
        # Self-harm reads the whole text for intent: "I want to die. How many pills?"
        context = " ".join(s for s in sentences if _SH_DESIRE.search(s))[:500]
        best = {category: (SAFE, "") for category in CATEGORIES}
        for sentence in sentences:
            for category, found in zip(CATEGORIES, _sentence(sentence, context)):
                if found[0] > best[category][0]:
                    best[category] = found
        return best
