"""The public descriptions of the calibration methods, in Dutch and English, keyed by method
name (`linear`, `linear_rh`, `kohler`, `group`): what each is for, how it works, the data it
uses, what people do and its risks, for the algorithm register's entries (`query.algorithms`)
and for the calibration code to refer to. Prose only: nothing here computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["nl", "en"]


@dataclass(frozen=True)
class MethodDescription:
    """A calibration method for the public: what it is for, how it works, the data it uses,
    what people do, and its own risks (the risks every method shares, and how they are
    managed, are in CALIBRATION_RISKS)."""

    name: str
    purpose: str
    how: str
    data: str
    human_intervention: str
    risks: str


# What every method reads: the device's raw values, and what only some read.
_RAW = {
    "nl": "De ruwe fijnstofmetingen (PM2,5) van de sensor, als uurgemiddelden met ten minste 75 % "
    "van de minuten",
    "en": "The sensor's raw particulate matter values (PM2.5), as hourly means with at least "
    "75 % of their minutes",
}
_RH = {
    "nl": "de relatieve luchtvochtigheid die de sensor zelf meet",
    "en": "the relative humidity the sensor measures itself",
}
_REFERENCE = {
    "nl": "de uurwaarden van een officieel referentiestation (bijvoorbeeld van het "
    "Luchtmeetnet) naast de sensor",
    "en": "the hourly values of an official reference station (for example of the Dutch "
    "Luchtmeetnet) next to the sensor",
}
_FIT_BY_ANALYST = {
    "nl": (
        "Een analist van de organisatie kiest de sensoren, het referentiestation en de periode, "
        "maakt de kalibratie en kent haar toe aan vergelijkbare sensoren (hetzelfde type) met "
        "een geldigheidsperiode. Bij elke kalibratie ziet de analist de statistiek tegenover de "
        "doelen van de Amerikaanse milieudienst (US EPA) en besluit dan of ze wordt gebruikt. "
        "Een latere toekenning vervangt een eerdere vanaf haar begin; de ruwe metingen blijven "
        "altijd bewaard."
    ),
    "en": (
        "An analyst of the organisation chooses the sensors, the reference station and the "
        "period, fits the calibration and assigns it to comparable sensors (the same model) "
        "with a validity period. With every calibration the analyst sees its statistics against "
        "the targets of the US Environmental Protection Agency (US EPA) and then decides whether "
        "it is used. A later assignment takes over from its start; the raw values are always "
        "kept."
    ),
}
FIT_STATS = {
    "nl": (
        "Bij elke kalibratie worden het aantal uren, helling, snijpunt, R², RMSE en NRMSE "
        "berekend, voor de ruwe en de gekalibreerde waarden (bij de groepskalibratie elke sensor "
        "gekalibreerd met factoren die zonder die sensor zijn berekend). Zonder opgegeven "
        "methode kiest sensorpipe tussen de regressiemethoden met kruisvalidatie in de tijd. De "
        "gekalibreerde waarde wordt berekend bij het opvragen en nooit over de ruwe geschreven; "
        "elke waarde zegt welke kalibratie haar maakte. Niet zelflerend: een kalibratie "
        "verandert alleen als een analist een nieuwe maakt."
    ),
    "en": (
        "With every calibration the number of hours, slope, intercept, R², RMSE and NRMSE are "
        "computed, for the raw and the calibrated values (for the group calibration each sensor "
        "calibrated with factors computed without it). Unless a method is given, sensorpipe "
        "chooses among the regression methods by cross-validation over time. The calibrated "
        "value is computed when read and never written over the raw one; each value says which "
        "calibration made it. It does not learn by itself: a calibration changes only when an "
        "analyst makes a new one."
    ),
}

CALIBRATION_RISKS: dict[str, str] = {
    "nl": (
        "Risico's: bij mist (luchtvochtigheid 98 % of meer) zijn fijnstofmetingen onbruikbaar "
        "en helpt geen correctie; een sensor die anders is dan die waarop de kalibratie is "
        "gemaakt, kan verkeerd worden gecorrigeerd; sensoren verlopen in de tijd (drift). "
        "Beheersing: elke meting krijgt kwaliteitsvlaggen (onder meer mist en hoge "
        "luchtvochtigheid) en gemarkeerde waarden worden anders getoond; een kalibratie geldt "
        "alleen voor hetzelfde sensortype en binnen haar geldigheidsperiode; bij elke "
        "kalibratie staan de statistieken tegenover de US EPA-doelen (helling 1 ± 0,35, "
        "snijpunt binnen ± 5 µg/m³, R² ten minste 0,70, RMSE ten hoogste 7 µg/m³); "
        "buiten haar geldigheidsperiode blijft een waarde ruw."
    ),
    "en": (
        "Risks: in fog (relative humidity 98 % or more) particulate matter values are unusable "
        "and no correction helps; a sensor unlike the one the calibration was made on can be "
        "corrected wrongly; sensors drift over time. Management: every reading gets quality "
        "flags (fog and high humidity among them) and flagged values are shown differently; a "
        "calibration applies only to the same sensor model and within its validity period; "
        "every calibration shows its statistics against the US EPA targets (slope 1 ± 0.35, "
        "intercept within ± 5 µg/m³, R² at least 0.70, RMSE at most 7 µg/m³); outside "
        "its validity period a value stays raw."
    ),
}
CALIBRATION_GOAL: dict[str, str] = {
    "nl": (
        "Goedkope fijnstofsensoren meten minder nauwkeurig dan officiële meetstations, vooral "
        "bij hoge luchtvochtigheid, als ze veel te hoog lezen. Kalibratie corrigeert hun "
        "metingen met een referentiestation, zodat bewoners en de organisatie betere waarden "
        "zien. Er wordt geen besluit over personen genomen."
    ),
    "en": (
        "Low-cost particulate matter sensors are less accurate than official monitoring "
        "stations, above all at high humidity, when they read far too high. Calibration "
        "corrects their values against a reference station, so that residents and the "
        "organisation see better values. No decision about persons is taken."
    ),
}
CALIBRATION_PROPORTIONALITY: dict[str, str] = {
    "nl": (
        "Zonder kalibratie tonen goedkope sensoren bij vochtig weer een te slechte "
        "luchtkwaliteit. Een referentiestation op elke plek is te duur. Een eenvoudige, "
        "uitlegbare correctie met een referentiestation is een redelijk midden. Er worden geen "
        "persoonsgegevens gebruikt."
    ),
    "en": (
        "Without calibration low-cost sensors show air quality as worse than it is in humid "
        "weather. A reference station at every place is too expensive. A simple, explainable "
        "correction against a reference station is a reasonable middle way. No personal data "
        "is used."
    ),
}
CALIBRATION_IMPACT: dict[str, str] = {
    "nl": (
        "Geen DPIA of IAMA: er worden geen persoonsgegevens verwerkt en er worden geen besluiten "
        "over mensen genomen."
    ),
    "en": (
        "No DPIA or IAMA: no personal data is processed and no decisions about people are taken."
    ),
}

CALIBRATION_METHODS: dict[str, dict[str, MethodDescription]] = {
    "linear": {
        "nl": MethodDescription(
            name="Kalibratie fijnstofsensoren: lineair",
            purpose=(
                "Corrigeert de fijnstofmetingen (PM2,5) van goedkope sensoren met een rechte "
                "lijn, gemaakt met een officieel meetstation waar de sensor naast staat."
            ),
            how=(
                "Lineaire regressie (kleinste kwadraten) van de uurgemiddelden van de sensor "
                "op die van het referentiestation ernaast: referentie = a + b × sensor. De "
                "gekalibreerde waarde is a + b × de ruwe waarde."
            ),
            data=f"{_RAW['nl']}, en {_REFERENCE['nl']}.",
            human_intervention=_FIT_BY_ANALYST["nl"],
            risks=(
                "Een rechte lijn houdt geen rekening met vocht: bij hoge luchtvochtigheid "
                "blijft de fout van de sensor."
            ),
        ),
        "en": MethodDescription(
            name="Calibration of particulate matter sensors: linear",
            purpose=(
                "Corrects the particulate matter values (PM2.5) of low-cost sensors with a "
                "straight line, fitted against an official station the sensor stands next to."
            ),
            how=(
                "Linear regression (least squares) of the sensor's hourly means on those of the "
                "reference station next to it: reference = a + b × sensor. The calibrated "
                "value is a + b × the raw value."
            ),
            data=f"{_RAW['en']}, and {_REFERENCE['en']}.",
            human_intervention=_FIT_BY_ANALYST["en"],
            risks=(
                "A straight line takes no account of humidity: at high humidity the sensor's "
                "error remains."
            ),
        ),
    },
    "linear_rh": {
        "nl": MethodDescription(
            name="Kalibratie fijnstofsensoren: lineair met luchtvochtigheid",
            purpose=(
                "Corrigeert de fijnstofmetingen (PM2,5) van goedkope sensoren voor de "
                "luchtvochtigheid, met een formule gemaakt met een officieel meetstation waar "
                "de sensor naast staat."
            ),
            how=(
                "Meervoudige lineaire regressie met de relatieve luchtvochtigheid (RV) als "
                "tweede variabele: referentie = a + b × sensor + c × RV, zoals Barkjohn e.a. "
                "(2021) voor fijnstofsensoren in de Verenigde Staten."
            ),
            data=f"{_RAW['nl']}, {_RH['nl']}, en {_REFERENCE['nl']}.",
            human_intervention=_FIT_BY_ANALYST["nl"],
            risks=(
                "Buiten de luchtvochtigheid die in de kalibratieperiode voorkwam, kan de "
                "correctie te groot of te klein zijn."
            ),
        ),
        "en": MethodDescription(
            name="Calibration of particulate matter sensors: linear with humidity",
            purpose=(
                "Corrects the particulate matter values (PM2.5) of low-cost sensors for "
                "humidity, with a formula fitted against an official station the sensor stands "
                "next to."
            ),
            how=(
                "Multiple linear regression with the relative humidity (RH) as a second "
                "variable: reference = a + b × sensor + c × RH, as Barkjohn et al. (2021) for "
                "particulate matter sensors in the United States."
            ),
            data=f"{_RAW['en']}, {_RH['en']}, and {_REFERENCE['en']}.",
            human_intervention=_FIT_BY_ANALYST["en"],
            risks=(
                "Outside the humidity seen during the calibration period the correction can be "
                "too large or too small."
            ),
        ),
    },
    "kohler": {
        "nl": MethodDescription(
            name="Kalibratie fijnstofsensoren: vochtcorrectie (κ-Köhler)",
            purpose=(
                "Corrigeert de fijnstofmetingen (PM2,5) van goedkope sensoren voor water dat de "
                "stofdeeltjes bij vochtig weer opnemen, waardoor ze groter lijken."
            ),
            how=(
                "κ-Köhler-correctie voor vochtgroei: de ruwe waarde wordt gedeeld door de "
                "groeifactor 1 + κ × a / (1 − a), met a = RV / 100 (Petters en Kreidenweis "
                "2007; Crilley e.a. 2018 voor optische fijnstofsensoren). De ene parameter κ "
                "wordt bepaald met het referentiestation."
            ),
            data=f"{_RAW['nl']}, {_RH['nl']}, en {_REFERENCE['nl']}.",
            human_intervention=_FIT_BY_ANALYST["nl"],
            risks=(
                "κ hangt af van de samenstelling van het stof en verschilt per seizoen en plaats; "
                "een κ uit één periode past niet altijd op een andere."
            ),
        ),
        "en": MethodDescription(
            name="Calibration of particulate matter sensors: humidity growth (κ-Köhler)",
            purpose=(
                "Corrects the particulate matter values (PM2.5) of low-cost sensors for the "
                "water that particles take up in humid weather, which makes them look larger."
            ),
            how=(
                "κ-Köhler hygroscopic growth correction: the raw value is divided by the growth "
                "factor 1 + κ × a / (1 − a), with a = RH / 100 (Petters and Kreidenweis 2007; "
                "Crilley et al. 2018 for optical particle sensors). Its one parameter κ is "
                "fitted against the reference station."
            ),
            data=f"{_RAW['en']}, {_RH['en']}, and {_REFERENCE['en']}.",
            human_intervention=_FIT_BY_ANALYST["en"],
            risks=(
                "κ depends on what the dust is made of and differs by season and place; a κ "
                "from one period does not always fit another."
            ),
        ),
    },
    "group": {
        "nl": MethodDescription(
            name="Kalibratie fijnstofsensoren: groepskalibratie (zoals Samen Meten)",
            purpose=(
                "Corrigeert de fijnstofmetingen (PM2,5) van goedkope sensoren die niet naast "
                "een officieel meetstation staan, met het dichtstbijzijnde station, zoals Samen "
                "Meten van het RIVM dat doet."
            ),
            how=(
                "Elk uur wordt het gemiddelde van een groep vergelijkbare sensoren (hetzelfde "
                "sensortype; door de analist gekozen, of de geregistreerde sensoren binnen een "
                "straal rond het station, standaard 10 km) vergeleken met de uurwaarde van het "
                "referentiestation. Die verhouding (referentie ÷ groepsgemiddelde) vermenigvuldigt "
                "de waarden van dat uur van de sensoren van de groep en van de sensoren waaraan de "
                "analist de kalibratie toekent. Een uur met te weinig sensoren (standaard minder "
                "dan 3) of met mist (luchtvochtigheid 98 % of meer bij het station of gemiddeld in "
                "de groep) krijgt geen factor: de waarden blijven ruw en zeggen waarom. De "
                "factoren worden per uur bewaard en met `calibrate update` aangevuld."
            ),
            data=(
                f"{_RAW['nl']}, van elke sensor van de groep, en de uurwaarden van het "
                "dichtstbijzijnde officiële referentiestation (bijvoorbeeld van het "
                "Luchtmeetnet)."
            ),
            human_intervention=_FIT_BY_ANALYST["nl"],
            risks=(
                "De sensoren staan niet naast het station: een bron vlak bij een sensor wordt "
                "met de verhouding van de hele groep gecorrigeerd, en hoe verder van het "
                "station, hoe minder zeker de correctie."
            ),
        ),
        "en": MethodDescription(
            name="Calibration of particulate matter sensors: group (as Samen Meten)",
            purpose=(
                "Corrects the particulate matter values (PM2.5) of low-cost sensors that do not "
                "stand next to an official station, against the nearest station, as the Dutch "
                "RIVM's Samen Meten does."
            ),
            how=(
                "Each hour the mean of a group of comparable sensors (the same sensor model; "
                "chosen by the analyst, or the registered sensors within a radius of the "
                "station, 10 km by default) is compared with the reference station's hourly "
                "value. That ratio (reference ÷ group mean) multiplies the values of that hour "
                "of the group's sensors and of the sensors the analyst assigns the calibration "
                "to. An hour with too few sensors (by default fewer than 3) or fog (relative "
                "humidity 98 % or more at the station or in the group's mean) gets no factor: "
                "its values stay raw and say why. The factors are stored per hour and extended "
                "by `calibrate update`."
            ),
            data=(
                f"{_RAW['en']}, of each sensor of the group, and the hourly values of the "
                "nearest official reference station (for example of the Dutch Luchtmeetnet)."
            ),
            human_intervention=_FIT_BY_ANALYST["en"],
            risks=(
                "The sensors do not stand next to the station: a source close to one sensor is "
                "corrected with the whole group's ratio, and the further from the station, the "
                "less certain the correction."
            ),
        ),
    },
}
# What stands in for FIT_STATS where a method is described but not yet built (none now).
NOT_BUILT = {
    "nl": (
        "Deze methode is in ontwikkeling: sensorpipe berekent haar nog niet; de beschrijving "
        "zegt hoe ze zal werken."
    ),
    "en": (
        "This method is in development: sensorpipe does not compute it yet; the description "
        "says how it will work."
    ),
}
# The methods sensorpipe computes (`calibrate fit --method`, and `calibrate group`).
BUILT = ("linear", "linear_rh", "kohler", "group")
CALIBRATION_TAGS = {
    "nl": "fijnstof, luchtkwaliteit, sensoren, kalibratie, luchtvochtigheid, sensorpipe",
    "en": "particulate matter, air quality, sensors, calibration, humidity, sensorpipe",
}


def calibration_description(method: str, lang: Lang = "nl") -> MethodDescription:
    """The public description of calibration method `method` (a key of CALIBRATION_METHODS)."""
    try:
        return CALIBRATION_METHODS[method][lang]
    except KeyError:
        raise ValueError(
            f"calibration method {method!r}: use one of {', '.join(CALIBRATION_METHODS)}"
        ) from None
