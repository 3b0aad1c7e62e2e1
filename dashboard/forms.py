"""The dashboard's forms; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    PasswordField,
    RadioField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from onerpa.staff import WrapTopic

WRAP_TOPICS = [
    SelectChoice(WrapTopic.BUG.value, "Ошибка в программе (баг)"),
    SelectChoice(WrapTopic.HOWTO.value, "Вопрос по работе с OneRPA"),
    SelectChoice(WrapTopic.LICENSING.value, "Лицензии, покупка, обновления"),
    SelectChoice(WrapTopic.OTHER.value, "Другое"),
]
BUG_ANSWER_NEEDED = "Для ошибки укажите, подтвердилась ли она"
YES_NO = [SelectChoice("yes", "Да"), SelectChoice("no", "Нет")]
BUG_STATES = [
    SelectChoice("yes", "Да, подтверждена"),
    SelectChoice("no", "Нет, не подтверждена"),
    SelectChoice("unknown", "Неясно"),
]


class LoginForm(FlaskForm):
    username = StringField("Имя пользователя", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Пароль", validators=[DataRequired(), Length(max=256)])


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""


class WrapupForm(FlaskForm):
    topic = RadioField("Тема звонка", choices=WRAP_TOPICS, validators=[InputRequired()])
    about_onerpa = RadioField(
        "Вопрос касался OneRPA?", choices=YES_NO, validators=[InputRequired()]
    )
    bug_confirmed = RadioField(
        "Грубая ошибка подтверждена?", choices=BUG_STATES, validators=[Optional()]
    )
    notes = TextAreaField("Заметки", validators=[Optional(), Length(max=4000)])

    def validate(self, extra_validators: Any = None) -> bool:
        """Validate the fields; a bug also needs the answer on its confirmation."""
        valid = super().validate(extra_validators)
        if self.topic.data == WrapTopic.BUG and not self.bug_confirmed.data:
            self.bug_confirmed.errors = [*self.bug_confirmed.errors, BUG_ANSWER_NEEDED]
            return False
        return valid

    def bug_state(self) -> bool | None:
        """Return the bug answer as stored: True, False or None (not a bug / unclear)."""
        if self.topic.data != WrapTopic.BUG:
            return None
        return {"yes": True, "no": False}.get(self.bug_confirmed.data or "")


class RefusalForm(FlaskForm):
    reason = TextAreaField("Причина отказа", validators=[DataRequired(), Length(max=2000)])
    until = DateField("Действует до (включительно)", validators=[Optional()])


class LiftForm(FlaskForm):
    lift_reason = StringField("Почему снимаем", validators=[DataRequired(), Length(max=2000)])


# The supervisor's edits of a customer's records (dashboard/customers.py). Messages in
# Russian: the pages have no translations, so each validator says its own words.
REQUIRED = "Заполните это поле."
TOO_LONG = "Не длиннее %(max)d символов."
NOT_A_DATE = "Укажите дату в формате ДД.ММ.ГГГГ."
NOT_A_NUMBER = "Укажите целое число."


class RuDateField(DateField):
    """A date field that accepts ISO (the browser's date input) and ДД.ММ.ГГГГ."""

    def __init__(self, label: str, **kwargs: Any) -> None:
        super().__init__(label, format=["%Y-%m-%d", "%d.%m.%Y"], **kwargs)

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError as err:
            raise ValueError(NOT_A_DATE) from err


class RuIntegerField(IntegerField):
    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError as err:
            raise ValueError(NOT_A_NUMBER) from err


def _text(label: str, limit: int, *, required: bool = True) -> StringField:
    first = DataRequired(REQUIRED) if required else Optional()
    return StringField(label, validators=[first, Length(max=limit, message=TOO_LONG)])


def _day(label: str, *, required: bool = True) -> RuDateField:
    return RuDateField(label, validators=[InputRequired(REQUIRED) if required else Optional()])


class LicenceForm(FlaskForm):
    product = _text("Продукт", 200)
    licence_number = _text("Номер лицензии", 64, required=False)
    purchased_on = _day("Дата покупки")


class UpdatesForm(FlaskForm):
    purchased_on = _day("Дата покупки обновлений")
    months = RuIntegerField(
        "На сколько месяцев",
        default=12,
        validators=[
            InputRequired(REQUIRED),
            NumberRange(min=1, max=120, message="От %(min)s до %(max)s месяцев."),
        ],
    )


class SubscriptionForm(FlaskForm):
    service = _text("Сервис", 200)
    starts_on = _day("Начало")
    ends_on = _day("Последний день (пусто — бессрочно)", required=False)
    cancelled_on = _day("Отменена с (пусто — не отменена)", required=False)

    def validate(self, extra_validators: Any = None) -> bool:
        """Validate the fields; the subscription cannot end before it starts."""
        valid = super().validate(extra_validators)
        start, end = self.starts_on.data, self.ends_on.data
        if start and end and end < start:
            self.ends_on.errors = [
                *self.ends_on.errors,
                "Подписка не может закончиться раньше, чем началась.",
            ]
            return False
        return valid


class PhoneForm(FlaskForm):
    number = _text("Номер телефона", 40)
    label = _text("Пометка (офис, мобильный…)", 100, required=False)


class GrantForm(FlaskForm):
    until = _day("Бесплатно до (включительно)")
    reason = TextAreaField(
        "Причина", validators=[DataRequired(REQUIRED), Length(max=2000, message=TOO_LONG)]
    )
